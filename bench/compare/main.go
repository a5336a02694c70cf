// Command compare measures two versions of bam against each other in one
// run, alternating, so that the drift of a shared, noisy machine hits both
// alike:
//
//	go run ./bench/compare -old 2729761 -bench 'Drain$|Failover$|Handoff' -rounds 5
//	go run ./bench/compare -old v1 -new v2 -bench 'Handoff/sqlite' -rounds 3 -reps 10 -json cmp.json
//	go run ./bench/compare -from cmp.json       # render a saved comparison again
//
// It checks the old revision (and -new, if it is a revision) out into
// temporary git worktrees, builds each version's bench test binary and
// bam there, then runs the binaries in turn, old then new, -rounds times:
// each run is `bench.test -test.run '^$' -test.bench RE -test.benchtime
// 1x -test.v` in that version's bench/ directory, with BAM_BENCH_BAM
// naming that version's bam, so every process benchmark starts its own
// version's nodes (and migrations). By default new is the working tree
// as it is. It prints, per benchmark and metric, the median, min and max
// of each version and the ratio new/old, with the machine and both
// commits; -json keeps every run's output. The worktrees are removed at
// the end, also after a failure or an interrupt (SIGINT or SIGTERM stops
// the run in progress, a second one kills it).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bam-dev/bam/bench/internal/benchrun"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	old, new string
	bench    string
	rounds   int
	reps     int
	timeout  time.Duration
	json     string
	from     string
}

// defaultTimeout is each run's -test.timeout unless -timeout says.
const defaultTimeout = 30 * time.Minute

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.old, "old", "", "the old version: a git `revision` (required)")
	fs.StringVar(&o.new, "new", worktree, "the new version: a git `revision`, or \"worktree\" for the working tree as it is")
	fs.StringVar(&o.bench, "bench", "", "run the benchmarks matching `regexp` (-test.bench; required)")
	fs.IntVar(&o.rounds, "rounds", 3, "run each version `n` times, alternately")
	fs.IntVar(&o.reps, "reps", 0, "set BAM_BENCH_REPS to `n`, the repetitions inside each process benchmark (0: leave it as it is)")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "each run's -test.timeout `d`")
	fs.StringVar(&o.json, "json", "", "also save every run's output to `file` (rewritten after each run)")
	fs.StringVar(&o.from, "from", "", "render a comparison saved by -json `file` instead of running")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: go run ./bench/compare -old REV [-new REV|worktree] -bench RE [flags]\n\n"+
			"Measures two versions of bam against each other: builds the bench test binary of each\n"+
			"in a temporary git worktree and runs them alternately, old then new, -rounds times.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	case o.from != "":
		if len(set) > 1 {
			return o, errors.New("-from renders a saved comparison: no other flag goes with it")
		}
		return o, nil
	case o.old == "":
		return o, errors.New("-old is required: the revision to compare with")
	case o.old == worktree:
		return o, errors.New("-old must be a revision; only -new can be the working tree")
	case o.bench == "":
		return o, errors.New("-bench is required: the regexp of the benchmarks to compare")
	case o.rounds < 1:
		return o, errors.New("-rounds must be at least 1")
	case o.reps < 0:
		return o, errors.New("-reps must not be negative")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench/compare:", err)
		return 2
	}
	var r *Record
	if o.from != "" {
		r, err = load(o.from)
	} else {
		r, err = measure(o, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench/compare:", err)
		return 2
	}
	fmt.Fprint(stdout, render(header(r), r))
	if r.Stopped != "" || compare(r).failed() {
		fmt.Fprintln(stderr, "bench/compare: FAILED (see the table)")
		return 1
	}
	return 0
}

func load(file string) (*Record, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %v", file, err)
	}
	return &r, nil
}

// save writes r to file, whole or not at all.
func save(file string, r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// version is one side, built and ready to run.
type version struct {
	side string // "old" or "new"
	dir  string // its module root: a temporary worktree, or the working tree
	test string // its bench test binary
	bam  string // its bam binary
	info Version
}

// measure checks out, builds and runs both versions. Its error is one of
// the preparation (a revision git does not know, a build that fails); a
// failed or interrupted run is in the Record.
func measure(o options, stderr io.Writer) (*Record, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		el := time.Since(start).Round(time.Second)
		fmt.Fprintf(stderr, "[%2d:%02d] "+format+"\n", append([]any{int(el.Minutes()), int(el.Seconds()) % 60}, args...)...)
	}

	// The first SIGINT or SIGTERM cancels ctx: the run in progress gets
	// SIGINT, and SIGKILL if it is still there 30 s later. The second
	// kills it at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		stopped atomic.Value // the signal that stopped the comparison
		current atomic.Int64 // the process group of the run in progress
	)
	sigs, done := make(chan os.Signal, 2), make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	defer close(done)
	go func() {
		for {
			var sig os.Signal
			select {
			case <-done:
				return
			case sig = <-sigs:
			}
			if stopped.Load() == nil {
				stopped.Store(sig.String())
				logf("%s: stopping (again to kill the run in progress)", sig)
				cancel()
				continue
			}
			if pgid := current.Load(); pgid != 0 {
				_ = syscall.Kill(-int(pgid), syscall.SIGKILL)
			}
		}
	}()

	root, err := benchrun.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bam-compare-")
	if err != nil {
		return nil, err
	}
	var worktrees []string
	defer func() {
		for _, dir := range worktrees {
			if err := removeWorktree(root, dir); err != nil {
				logf("LEFT BEHIND: the worktree %s: %v", dir, err)
			}
		}
		if err := os.RemoveAll(tmp); err != nil {
			logf("LEFT BEHIND: %s: %v", tmp, err)
		}
	}()

	r := &Record{Bench: o.bench, Timeout: o.timeout.String(), Rounds: o.rounds, Start: start, LoadStart: benchrun.LoadAvg()}
	if o.reps > 0 {
		r.Reps = strconv.Itoa(o.reps)
	} else {
		r.Reps = os.Getenv("BAM_BENCH_REPS")
	}
	var versions []*version
	for _, v := range []*version{{side: "old", info: Version{Rev: o.old}}, {side: "new", info: Version{Rev: o.new}}} {
		v.dir = root
		if v.info.Rev != worktree {
			v.dir = filepath.Join(tmp, v.side)
			logf("%s: git worktree add %s %s", v.side, v.dir, v.info.Rev)
			if err := addWorktree(ctx, root, v.dir, v.info.Rev); err != nil {
				return nil, fmt.Errorf("%s: %w", v.side, err)
			}
			worktrees = append(worktrees, v.dir)
		}
		versions = append(versions, v)
	}
	for _, v := range versions {
		v.info.Commit = benchrun.GitCommit(ctx, v.dir)
		v.info.SQLite = benchrun.Command(ctx, v.dir, "go", "list", "-m", "modernc.org/sqlite")
		v.test, v.bam = filepath.Join(tmp, v.side+".test"), filepath.Join(tmp, v.side+"-bam")
		logf("%s (%s): building its bench test binary and bam", v.side, v.info.Commit)
		for _, args := range [][]string{{"test", "-c", "-o", v.test, "./bench/"}, {"build", "-o", v.bam, "./cmd/bam"}} {
			if out, err := groupCommand(ctx, v.dir, "go", args...).CombinedOutput(); err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("stopped by %v while building", stopped.Load())
				}
				return nil, fmt.Errorf("%s (%s): go %s: %v\n%s", v.side, v.info.Commit, strings.Join(args, " "), err, out)
			}
		}
	}
	r.Old, r.New = versions[0].info, versions[1].info
	r.Machine = benchrun.ProbeMachine(ctx, root)

rounds:
	for round := 1; round <= o.rounds; round++ {
		for _, v := range versions {
			if ctx.Err() != nil {
				break rounds
			}
			logf("round %d of %d: %s (%s)", round, o.rounds, v.side, v.info.Commit)
			run := runOnce(ctx, v, r, round, &current, logf)
			if ctx.Err() != nil {
				run.Err = strings.TrimSpace("stopped by " + fmt.Sprint(stopped.Load()) + "; " + run.Err)
			}
			r.Runs = append(r.Runs, run)
			logf("round %d of %d: %s took %s%s", round, o.rounds, v.side, benchrun.FormatDuration(run.End.Sub(run.Start)), errSuffix(run.Err))
			if o.json != "" {
				if err := save(o.json, r); err != nil {
					logf("saving %s: %v", o.json, err)
				}
			}
		}
	}
	if sig := stopped.Load(); sig != nil {
		r.Stopped = "stopped by " + sig.(string)
	}
	r.End, r.LoadEnd = time.Now(), benchrun.LoadAvg()
	if o.json != "" {
		if err := save(o.json, r); err != nil {
			logf("saving %s: %v", o.json, err)
		} else {
			logf("saved every run in %s", o.json)
		}
	}
	return r, nil
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

// runOnce runs v's bench test binary once, in v's bench/ directory.
func runOnce(ctx context.Context, v *version, r *Record, round int, current *atomic.Int64, logf func(string, ...any)) Run {
	run := Run{Side: v.side, Round: round, Start: time.Now()}
	dir := filepath.Join(v.dir, "bench")
	cmd := groupCommand(ctx, dir, v.test, testArgs(r)...)
	cmd.Env = runEnv(os.Environ(), dir, v.bam, r.Reps)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out strings.Builder
	p := benchrun.NewParser(func(ev benchrun.Progress) {
		switch ev.Kind {
		case "start", "skip":
			logf("  %s %s", ev.Kind, ev.Bench.Name)
		case "fail":
			logf("  FAIL %s: %s", ev.Bench.Name, ev.Bench.FailReason)
		}
	})
	fed := make(chan error, 1)
	go func() { fed <- p.Feed(pr, &out) }()
	err := cmd.Start()
	if err == nil {
		current.Store(int64(cmd.Process.Pid))
		err = cmd.Wait()
		current.Store(0)
		if ctx.Err() != nil {
			// Whatever the benchmark started is not left running.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	pw.Close()
	if ferr := <-fed; ferr != nil && err == nil {
		err = ferr
	}
	run.End, run.Output = time.Now(), out.String()
	if err != nil {
		run.Err = err.Error()
	}
	return run
}

// runEnv is env for a run in dir: BAM_BENCH_BAM names the version's own
// bam, BAM_BENCH_REPS is reps (unset if ""), PWD is dir.
func runEnv(env []string, dir, bam, reps string) []string {
	var out []string
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "BAM_BENCH_BAM", "BAM_BENCH_REPS", "PWD":
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "PWD="+dir, "BAM_BENCH_BAM="+bam)
	if reps != "" {
		out = append(out, "BAM_BENCH_REPS="+reps)
	}
	return out
}

// groupCommand is a command in a process group of its own, so that
// stopping it reaches what it started (the bam nodes of a process
// benchmark, the compilers of a build): SIGINT to the group when ctx ends,
// SIGKILL to the command 30 s later if it is still there.
func groupCommand(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// addWorktree checks rev out, detached, into dir.
func addWorktree(ctx context.Context, root, dir, rev string) error {
	hash, err := git(ctx, root, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return err
	}
	_, err = git(ctx, root, "worktree", "add", "--detach", dir, hash)
	return err
}

// removeWorktree removes a worktree that addWorktree made, even one left
// half made.
func removeWorktree(root, dir string) error {
	ctx := context.Background()
	if _, err := git(ctx, root, "worktree", "remove", "--force", dir); err != nil {
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			return errors.Join(err, rmErr)
		}
		_, err = git(ctx, root, "worktree", "prune")
		return err
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}
