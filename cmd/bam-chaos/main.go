// Command bam-chaos runs the fault-injection harness of the event bus
// (package internal/chaos): real `bam serve` processes, writers, and faults
// chosen at random from a seed; then it checks that every acknowledged
// event was applied exactly once and in order, prints a report, and exits
// non-zero on any violation.
//
//	go run ./cmd/bam-chaos                        # 2 minutes, 3 nodes, every fault, own PostgreSQL
//	go run ./cmd/bam-chaos --duration 30m --seed 7
//	go run ./cmd/bam-chaos --store sqlite --sources 1
//
// Exit status: 0 when the promises held, 1 when the checker found a
// violation, 2 when the run itself could not be carried out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bam-dev/bam/internal/chaos"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	d := chaos.DefaultConfig()
	cfg := d
	fs := flag.NewFlagSet("bam-chaos", flag.ContinueOnError)
	fs.DurationVar(&cfg.Duration, "duration", d.Duration, "how long to write events and inject faults")
	fs.IntVar(&cfg.Nodes, "nodes", d.Nodes, "bam serve processes in the pool")
	fs.IntVar(&cfg.Sources, "sources", d.Sources, "sources, alternating buffer and pg-outbox")
	fs.IntVar(&cfg.Partitions, "partitions", d.Partitions, "partitions (sessions) per source")
	fs.IntVar(&cfg.Writers, "writers", d.Writers, "concurrent writers, spread over the sources")
	fs.DurationVar(&cfg.WriteEvery, "write-every", d.WriteEvery, "a writer's pause between batches")
	fs.Float64Var(&cfg.Poison, "poison", d.Poison, "probability that a batch carries a poison event")
	fs.DurationVar(&cfg.FaultEvery, "fault-every", d.FaultEvery, "mean time between faults")
	faults := fs.String("faults", strings.Join(d.Faults, ","), "kinds of fault to inject, comma-separated ("+strings.Join(chaos.AllFaults, ",")+"; empty: none)")
	seed := fs.Uint64("seed", 0, "random seed of faults and workload (0: pick one and print it)")
	fs.StringVar(&cfg.Store, "store", d.Store, "postgres (a server the harness starts and may restart), sqlite, or a postgres:// URL (never restarted)")
	fs.StringVar(&cfg.PGBin, "pg-bin", d.PGBin, "directory of PostgreSQL 15's initdb and pg_ctl")
	fs.StringVar(&cfg.Bam, "bam", "", "the bam binary to run (default: build it from this module)")
	fs.StringVar(&cfg.BuildTags, "tags", "", "build tags for the bam binary it builds (bam_planted_bug: a broken fence, to see the checker fail)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", d.LeaseTTL, "the nodes' --lease-ttl")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", d.DrainTimeout, "how long the pool may take to drain after the faults")
	fs.StringVar(&cfg.Dir, "dir", "", "where to keep the run's files (default: a temporary directory, removed when the run passes)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the run's files even when it passes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Faults = nil
	if *faults != "" {
		cfg.Faults = strings.Split(*faults, ",")
	} else {
		cfg.Faults = []string{}
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	cfg.Log = os.Stderr

	rerun := fmt.Sprintf("go run ./cmd/bam-chaos --seed %d", cfg.Seed)
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "seed" {
			rerun += fmt.Sprintf(" --%s=%s", f.Name, f.Value)
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	res, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bam-chaos: %v\n", err)
		if res.Dir != "" { // the run had begun: say how to see it again
			fmt.Fprintf(os.Stderr, "the run's files: %s\n", res.Dir)
			fmt.Fprintf(os.Stderr, "rerun: %s\n", rerun)
		}
		return 2
	}
	fmt.Printf("bam-chaos: seed %d, %d nodes, %d sources, store %s, %v of faults, %v in all\n",
		res.Seed, cfg.Nodes, cfg.Sources, cfg.Store, cfg.Duration, time.Since(started).Round(time.Second))
	fmt.Print(res.Report.String())
	fmt.Print(logSummary(res.Lines))
	if !res.Report.OK() {
		if res.Dir != "" {
			fmt.Printf("the run's files (node logs, PostgreSQL's log): %s\n", res.Dir)
		}
		fmt.Printf("rerun: %s\n", rerun)
		return 1
	}
	return 0
}

// logSummary tells, from the nodes' logs, how the pool lived through the
// faults: what it took over and how, and what it refused to commit.
func logSummary(lines map[string]int) string {
	var parts []string
	for _, m := range []struct{ msg, label string }{
		{"session claimed", "claimed free"},
		{"session handed over", "handed over"},
		{"session taken over from a dead node", "taken over from a dead node"},
		{"session taken over from an expired lease", "taken over from an expired lease"},
		{"session claimed again: this node's own lease on it had expired (it was paused or late to renew)", "claimed back after its own lease expired"},
		{"session lost: a peer owns it now (this node was paused or cut off past its lease)", "lost after a pause or cut"},
		{"session lost: its lease was released by a peer that found this node dead or silent (this node was paused or cut off past its lease)", "lost after being found dead"},
		{"session lost: the store no longer holds our lease (it expired or a peer took it)", "lost lease"},
		{"session lost to a newer owner; nothing of the batch in hand was committed", "batches refused by the fence"},
		{"session stopped: its lease could not be renewed before its local deadline", "stopped at the local deadline"},
		{"node died: its liveness lock was released with its connection; its leases are expired now", "deaths seen by liveness lock"},
		{"liveness lock taken again", "liveness locks taken back"},
		{"batch failed; retrying", "batches retried"},
	} {
		if n := lines[m.msg]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", m.label, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "node logs: " + strings.Join(parts, ", ") + "\n"
}
