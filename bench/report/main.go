// Command report runs the benchmark suite of bench/ with one command,
// prints a table of every metric (median, min and max over the runs) with
// the machine it ran on, and writes it into docs/BENCHMARKS.md between the
// lines <!-- bench-report:begin --> and <!-- bench-report:end -->:
//
//	go run ./bench/report                          # everything, -count 3
//	go run ./bench/report -bench 'Drain$' -count 5 -reps 10 -json run.json
//	go run ./bench/report -from run.json -write "" # render a saved run again
//
// It runs `go test -run '^$' -bench RE -benchtime 1x -count N -json
// ./bench/`, shows on stderr which benchmark starts and ends, and exits
// non-zero if a benchmark or go test failed, after writing what it got.
package main

import (
	"context"
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
	"sync"
	"syscall"
	"time"

	"github.com/bam-dev/bam/bench/internal/benchrun"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, benchrun.ProbeMachine))
}

type options struct {
	bench   string
	count   int
	reps    int
	timeout time.Duration
	write   string
	json    string
	from    string
	set     map[string]bool // flags given on the command line
}

const defaultDoc = "docs/BENCHMARKS.md"

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bench, "bench", ".", "run only the benchmarks matching `regexp` (go test -bench)")
	fs.IntVar(&o.count, "count", 3, "run each benchmark `n` times (go test -count); the table gives median, min and max")
	fs.IntVar(&o.reps, "reps", 0, "set BAM_BENCH_REPS to `n`, the repetitions inside each process benchmark (0: leave it as it is)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Minute, "stop go test after `d` (build included) and report what it got")
	fs.StringVar(&o.write, "write", defaultDoc, "write the table between the bench-report markers of `file` (\"\": print only)")
	fs.StringVar(&o.json, "json", "", "also save the raw go test -json stream to `file`")
	fs.StringVar(&o.from, "from", "", "render a saved go test -json or plain -bench output `file` (- for stdin) instead of running")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench/report [flags]\n\n"+
			"Runs the benchmarks of ./bench, prints a table of their metrics with the machine,\n"+
			"and writes it between the %s and %s lines of %s.\n\n", beginMarker, endMarker, defaultDoc)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	case o.count < 1:
		return o, errors.New("-count must be at least 1")
	case o.reps < 0:
		return o, errors.New("-reps must not be negative")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	case o.from != "" && o.json != "":
		return o, errors.New("-json saves a run's stream; with -from nothing runs")
	case o.from != "" && (o.set["bench"] || o.set["count"] || o.set["reps"] || o.set["timeout"]):
		return o, errors.New("-bench, -count, -reps and -timeout choose what runs; with -from nothing runs")
	}
	return o, nil
}

// run is the command; probe describes the machine (tests give a fake).
func run(args []string, stdout, stderr io.Writer, probe func(context.Context, string) benchrun.Machine) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "bench/report:", err)
		return 2
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	root, err := benchrun.ModuleRoot(ctx)
	if err != nil {
		if o.from == "" || (o.write != "" && !o.set["write"]) {
			return fail(err)
		}
		root = "." // rendering a saved run: the machine rows say what they cannot find
	}
	if o.write != "" && !o.set["write"] {
		o.write = filepath.Join(root, defaultDoc)
	}
	if o.write != "" {
		// Refuse now rather than after an hour of benchmarks.
		if err := checkMarkers(o.write); err != nil {
			return fail(err)
		}
	}

	start := time.Now()
	loadStart := benchrun.LoadAvg()
	m := probe(ctx, root)
	var (
		s           *benchrun.Stream
		interrupted bool
		header      []benchrun.Row
	)
	if o.from != "" {
		s, err = parseFile(o.from)
		if err != nil {
			return fail(err)
		}
		header = fromHeader(o.from, s, m, loadStart)
	} else {
		var rawJSON io.WriteCloser
		if o.json != "" {
			f, err := os.Create(o.json)
			if err != nil {
				return fail(err)
			}
			rawJSON = f
		}
		s, interrupted = runBenchmarks(root, o, rawJSON, stderr, start)
		if rawJSON != nil {
			if err := rawJSON.Close(); err != nil {
				fmt.Fprintln(stderr, "bench/report: saving the stream:", err)
			}
		}
		header = runHeader(o, m, start, loadStart, benchrun.LoadAvg())
	}

	count := o.count
	if o.from != "" {
		count = 0
	}
	body := render(header, s, count)
	fmt.Fprint(stdout, body)

	code := 0
	if s.Failed() || interrupted {
		code = 1
	}
	switch {
	case o.write == "":
	case interrupted:
		fmt.Fprintf(stderr, "bench/report: interrupted: %s left as it was\n", o.write)
	case len(s.Reported()) == 0:
		fmt.Fprintf(stderr, "bench/report: no benchmark reported anything: %s left as it was\n", o.write)
		code = 1
	default:
		if err := writeSection(o.write, body); err != nil {
			fmt.Fprintln(stderr, "bench/report:", err)
			return 1
		}
		fmt.Fprintf(stderr, "bench/report: wrote %s\n", o.write)
	}
	if code != 0 {
		fmt.Fprintln(stderr, "bench/report: FAILED (see the table)")
	}
	return code
}

// parseFile parses a saved stream.
func parseFile(name string) (*benchrun.Stream, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	p := benchrun.NewParser(nil)
	if err := p.Feed(r, nil); err != nil {
		return nil, fmt.Errorf("reading %s: %v", name, err)
	}
	return p.Finish(), nil
}

// goTestArgs are the arguments of the go test command the report runs.
func goTestArgs(o options) []string {
	return []string{"test", "-run", "^$", "-bench", o.bench, "-benchtime", "1x",
		"-count", strconv.Itoa(o.count), "-timeout", o.timeout.String(), "-json", "./bench/"}
}

// reps is the BAM_BENCH_REPS the benchmarks see, "" if unset.
func reps(o options) string {
	if o.reps > 0 {
		return strconv.Itoa(o.reps)
	}
	return os.Getenv("BAM_BENCH_REPS")
}

// runBenchmarks runs go test in root, parses its stream as it comes and
// tells progress on stderr. It stops go test on the first SIGINT or SIGTERM
// (the second kills it) and after -timeout: go test's own -timeout does
// not cover benchmarks.
func runBenchmarks(root string, o options, raw io.Writer, stderr io.Writer, start time.Time) (*benchrun.Stream, bool) {
	cmdline := "go " + benchrun.ShellJoin(goTestArgs(o))
	if r := reps(o); r != "" {
		cmdline = "BAM_BENCH_REPS=" + r + " " + cmdline
	}
	fmt.Fprintf(stderr, "bench/report: %s\n", cmdline)

	p := benchrun.NewParser(progressPrinter(stderr, start, o.count))
	cmd := exec.Command("go", goTestArgs(o)...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if o.reps > 0 {
		cmd.Env = append(cmd.Env, "BAM_BENCH_REPS="+strconv.Itoa(o.reps))
	}
	// A process group of its own, so that a stop reaches the test binary
	// and the bam processes it started, not only the go command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.Problem("go test: " + err.Error())
		p.MarkPackageFailed()
		return p.Finish(), false
	}
	errTail := &tail{}
	cmd.Stderr = io.MultiWriter(stderr, errTail) // read after Wait only
	if err := cmd.Start(); err != nil {
		p.Problem("go test did not start: " + err.Error())
		p.MarkPackageFailed()
		return p.Finish(), false
	}

	var (
		mu          sync.Mutex
		interrupted bool
		timedOut    bool
	)
	done := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		timer := time.NewTimer(o.timeout)
		defer timer.Stop()
		var kill <-chan time.Time
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			kill = time.After(30 * time.Second)
		}
		for {
			select {
			case <-done:
				return
			case <-sigs:
				mu.Lock()
				again := interrupted
				interrupted = true
				mu.Unlock()
				if again {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					continue
				}
				fmt.Fprintln(stderr, "bench/report: stopping go test (again to kill it)")
				stop()
			case <-timer.C:
				mu.Lock()
				timedOut = true
				mu.Unlock()
				fmt.Fprintf(stderr, "bench/report: -timeout %s reached: stopping go test\n", o.timeout)
				stop()
			case <-kill:
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	}()

	readErr := p.Feed(stdout, raw)
	waitErr := cmd.Wait()
	close(done)
	mu.Lock()
	defer mu.Unlock()
	if readErr != nil {
		p.Problem("reading go test's output: " + readErr.Error())
	}
	switch {
	case timedOut:
		p.Problem(fmt.Sprintf("stopped by bench/report after -timeout %s", o.timeout))
	case interrupted:
		p.Problem("interrupted")
	case waitErr != nil && !p.PackageFailed():
		msg := "go test: " + waitErr.Error()
		if last := errTail.lastLine(); last != "" {
			msg += ": " + last
		}
		p.Problem(msg)
	}
	if waitErr != nil || timedOut || interrupted {
		p.MarkPackageFailed()
	}
	return p.Finish(), interrupted
}

// tail keeps the end of what is written to it: go test's stderr, whose
// last line explains a failure the stream does not.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// progressPrinter tells on stderr when a benchmark starts, ends a run,
// is skipped or fails, with the time since the command started.
func progressPrinter(w io.Writer, start time.Time, count int) func(benchrun.Progress) {
	last := map[string]time.Time{}
	return func(ev benchrun.Progress) {
		now := time.Now()
		el := now.Sub(start).Round(time.Second)
		stamp := fmt.Sprintf("[%2d:%02d]", int(el.Minutes()), int(el.Seconds())%60)
		name := ev.Bench.Name
		switch ev.Kind {
		case "start":
			last[name] = now
			fmt.Fprintf(w, "%s start %s\n", stamp, name)
		case "done":
			took := ""
			if t, ok := last[name]; ok {
				took = ", " + benchrun.FormatDuration(now.Sub(t))
			}
			last[name] = now
			fmt.Fprintf(w, "%s done  %s (run %d of %d%s)\n", stamp, name, ev.Bench.Runs, count, took)
		case "skip":
			fmt.Fprintf(w, "%s skip  %s: %s\n", stamp, name, strings.TrimSpace(benchrun.TrimSkipped(ev.Bench.SkipReason)))
		case "fail":
			fmt.Fprintf(w, "%s FAIL  %s: %s\n", stamp, name, ev.Bench.FailReason)
		}
	}
}

// runHeader describes a fresh run.
func runHeader(o options, m benchrun.Machine, start time.Time, loadStart, loadEnd string) []benchrun.Row {
	rerun := "go run ./bench/report -bench " + benchrun.ShellQuote(o.bench) + " -count " + strconv.Itoa(o.count)
	if o.reps > 0 {
		rerun += " -reps " + strconv.Itoa(o.reps)
	} else if r := reps(o); r != "" {
		rerun = "BAM_BENCH_REPS=" + r + " " + rerun
	}
	if o.set["timeout"] {
		rerun += " -timeout " + o.timeout.String()
	}
	gotest := "go " + benchrun.ShellJoin(goTestArgs(o))
	repsRow := "unset (each process benchmark's default)"
	if r := reps(o); r != "" {
		gotest = "BAM_BENCH_REPS=" + r + " " + gotest
		repsRow = r
	}
	return []benchrun.Row{
		{Label: "date", Value: start.UTC().Format("2006-01-02 15:04 UTC") + ", took " + benchrun.FormatDuration(time.Since(start))},
		{Label: "rerun", Value: benchrun.Code(rerun)},
		{Label: "go test", Value: benchrun.Code(gotest)},
		{Label: "BAM_BENCH_REPS", Value: repsRow},
		{Label: "commit", Value: m.Commit},
		{Label: "Go", Value: m.Go},
		{Label: "CPU", Value: m.CPU},
		{Label: "memory", Value: m.Memory},
		{Label: "kernel", Value: m.Kernel},
		{Label: "load average (1, 5, 15 min)", Value: loadStart + " at the start, " + loadEnd + " at the end"},
		{Label: "PostgreSQL", Value: m.PostgreSQL},
		{Label: "SQLite", Value: m.SQLite},
	}
}

// fromHeader describes a saved run rendered again: the stream tells its
// time and CPU, the rest is this machine now.
func fromHeader(file string, s *benchrun.Stream, m benchrun.Machine, load string) []benchrun.Row {
	date := "unknown (plain output has no times)"
	if !s.Start.IsZero() {
		date = s.Start.UTC().Format("2006-01-02 15:04 UTC") + ", took " + benchrun.FormatDuration(s.End.Sub(s.Start))
	}
	cpu := s.CPU
	if cpu == "" {
		cpu = "not in the stream"
	}
	return []benchrun.Row{
		{Label: "source", Value: "rendered from the saved stream " + benchrun.Code(filepath.Base(file)) + "; the rows marked (now) describe the machine that rendered it, at that time"},
		{Label: "date", Value: date},
		{Label: "CPU (go test)", Value: cpu},
		{Label: "commit (now)", Value: m.Commit},
		{Label: "Go (now)", Value: m.Go},
		{Label: "CPU (now)", Value: m.CPU},
		{Label: "memory (now)", Value: m.Memory},
		{Label: "kernel (now)", Value: m.Kernel},
		{Label: "load average (now)", Value: load},
		{Label: "PostgreSQL (now)", Value: m.PostgreSQL},
		{Label: "SQLite (now)", Value: m.SQLite},
	}
}
