package benchrun

import (
	"bufio"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bench is what the stream said about one benchmark: the values of each
// metric over the runs (-count), and whether it was skipped or failed.
type Bench struct {
	Name    string
	Runs    int                  // result lines that reported at least one metric
	Units   []string             // metrics in the order first reported (ns/op left out)
	Values  map[string][]float64 // per unit, one value a run that reported it
	Skipped bool
	Failed  bool
	// SkipReason and FailReason are the log line the benchmark wrote last
	// before (or, in plain output, right after) the SKIP or FAIL.
	SkipReason, FailReason string

	started bool     // an "=== RUN" or header line named it
	logs    []string // its log entries, the "file.go:NN: " prefix removed
	mark    int      // len(logs) at its last result, SKIP or FAIL
	pending string   // "skip" or "fail": the reason is in the log lines to come
}

// Stream is everything a parser learnt from one `go test` output.
type Stream struct {
	Benches []*Bench // in the order they started or first reported
	byName  map[string]*Bench

	CPU, GOOS, GOARCH string          // from go test's header lines
	Start, End        time.Time       // from the JSON events' times; zero for plain output
	PackageFailed     bool            // a FAIL line, a package "fail" event or a panic
	Problems          []string        // panics, build failures, a timeout: said once each
	known             map[string]bool // names from RUN and header lines
}

// Bench returns the named benchmark, or nil.
func (s *Stream) Bench(name string) *Bench { return s.byName[name] }

// Reported are the benchmarks worth a row: those with a result, a SKIP or a
// FAIL. Parents that only ran sub-benchmarks are left out, and so is a
// parent's FAIL that only repeats a sub-benchmark's.
func (s *Stream) Reported() []*Bench {
	var out []*Bench
	for _, b := range s.Benches {
		if b.Runs == 0 && !b.Skipped && !b.Failed {
			continue
		}
		if b.Failed && b.Runs == 0 && !b.Skipped && b.FailReason == "" && s.childFailed(b.Name) {
			continue
		}
		out = append(out, b)
	}
	return out
}

func (s *Stream) childFailed(name string) bool {
	for _, b := range s.Benches {
		if b.Failed && strings.HasPrefix(b.Name, name+"/") {
			return true
		}
	}
	return false
}

// Failed says whether anything went wrong: a benchmark failed, the package
// failed, or a problem was noted.
func (s *Stream) Failed() bool {
	return s.PackageFailed || len(s.Problems) > 0 || s.benchFailed()
}

func (s *Stream) benchFailed() bool {
	for _, b := range s.Reported() {
		if b.Failed {
			return true
		}
	}
	return false
}

// Progress is what a parser tells as it goes: "start", "done", "skip" or
// "fail" of a benchmark.
type Progress struct {
	Kind  string
	Bench *Bench
}

// Parser reads `go test -json` events or plain `go test -bench` output
// (from go test or a test binary run directly), a line at a time, in any
// mix.
type Parser struct {
	s          Stream
	partial    strings.Builder // JSON output not yet ended by a newline
	current    string          // the benchmark the last RUN or header line named
	block      string          // the benchmark of the open "--- X:" block, whose indented lines follow it
	lastLog    *Bench          // the benchmark the last log entry went to, for continuation lines
	lastIndent int             // the indentation of that entry
	waiting    string          // a name printed without its result (plain output: the benchmark wrote in between)
	build      []string        // the compiler's messages (build-output events)
	other      string          // the last line the parser did not know, to explain a failure
	progress   func(Progress)
}

// NewParser returns a parser that tells progress (if not nil) as it goes.
func NewParser(progress func(Progress)) *Parser {
	if progress == nil {
		progress = func(Progress) {}
	}
	return &Parser{
		s:        Stream{byName: map[string]*Bench{}, known: map[string]bool{}},
		progress: progress,
	}
}

// event is the part of a test2json event the parser uses.
type event struct {
	Time   time.Time
	Action string
	Test   string
	Output string
}

// Line takes one line of the stream, without its newline: a JSON event or
// a line of plain output.
func (p *Parser) Line(raw string) {
	if strings.HasPrefix(strings.TrimSpace(raw), "{") {
		var ev event
		if err := json.Unmarshal([]byte(raw), &ev); err == nil && ev.Action != "" {
			p.event(ev)
			return
		}
	}
	p.flushPartial()
	p.textLine(raw)
}

func (p *Parser) event(ev event) {
	if !ev.Time.IsZero() {
		if p.s.Start.IsZero() {
			p.s.Start = ev.Time
		}
		p.s.End = ev.Time
	}
	switch ev.Action {
	case "output":
		p.output(ev.Output)
	case "build-output":
		if line := strings.TrimSpace(ev.Output); line != "" && !strings.HasPrefix(line, "#") {
			p.build = append(p.build, line)
		}
	case "build-fail":
		p.s.PackageFailed = true
		p.Problem("build failed: " + strings.Join(p.build, "; "))
	case "fail":
		if ev.Test == "" {
			p.s.PackageFailed = true
		}
	}
}

// output takes a piece of output text: test2json may split a line (a
// benchmark's name and its results, or a long line) over several events.
func (p *Parser) output(text string) {
	for {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			p.partial.WriteString(text)
			return
		}
		p.partial.WriteString(text[:i])
		line := p.partial.String()
		p.partial.Reset()
		p.textLine(line)
		text = text[i+1:]
	}
}

func (p *Parser) flushPartial() {
	if p.partial.Len() > 0 {
		line := p.partial.String()
		p.partial.Reset()
		p.textLine(line)
	}
}

// MarkPackageFailed says the run failed as a whole (the command exited
// non-zero, was stopped or timed out), before Finish.
func (p *Parser) MarkPackageFailed() { p.s.PackageFailed = true }

// PackageFailed says whether the stream so far says the run failed as a
// whole (a FAIL line, a panic, a build failure) or MarkPackageFailed did.
func (p *Parser) PackageFailed() bool { return p.s.PackageFailed }

// Feed passes r to p a line at a time, copying it to raw if not nil.
func (p *Parser) Feed(r io.Reader, raw io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if raw != nil && line != "" {
			if _, werr := io.WriteString(raw, line); werr != nil {
				return werr
			}
		}
		if line != "" {
			p.Line(strings.TrimSuffix(line, "\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Finish ends the stream and returns what it said. If the package failed,
// a benchmark that started but never reported (go test was killed, timed
// out or panicked) is marked failed.
func (p *Parser) Finish() *Stream {
	p.flushPartial()
	if p.s.PackageFailed && len(p.s.Problems) == 0 && !p.s.benchFailed() {
		// Nothing says why: the last line go test wrote that is not a
		// benchmark's (a flag the test binary refused, for one).
		p.Problem(strings.TrimSpace("go test failed: " + p.other))
	}
	if p.s.PackageFailed {
		why := "started but reported nothing: go test ended before it finished"
		if len(p.s.Problems) > 0 {
			why += " (" + p.s.Problems[0] + ")"
		}
		for _, b := range p.s.Benches {
			if b.started && b.Runs == 0 && !b.Skipped && !b.Failed && !p.isParent(b.Name) {
				b.Failed, b.FailReason = true, why
			}
		}
	}
	return &p.s
}

func (p *Parser) isParent(name string) bool {
	for k := range p.s.known {
		if strings.HasPrefix(k, name+"/") {
			return true
		}
	}
	return false
}

// Problem notes what went wrong outside the stream (a command that could
// not start or was stopped), once.
func (p *Parser) Problem(msg string) {
	for _, m := range p.s.Problems {
		if m == msg {
			return
		}
	}
	p.s.Problems = append(p.s.Problems, msg)
}

var (
	logEntryRE = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
	procsRE    = regexp.MustCompile(`^(.+)-\d+$`)
	durationRE = regexp.MustCompile(` \([0-9.]+s\)$`)
)

func (p *Parser) textLine(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		p.indented(line)
		return
	}
	p.block, p.lastLog = "", nil
	switch {
	case strings.HasPrefix(line, "=== RUN"), strings.HasPrefix(line, "=== NAME"), strings.HasPrefix(line, "=== CONT"):
		if f := strings.Fields(line); len(f) >= 3 {
			p.start(f[2])
		}
	case strings.HasPrefix(line, "--- "):
		p.marker(line)
	case strings.HasPrefix(line, "Benchmark"):
		p.benchLine(line)
	case strings.HasPrefix(line, "cpu: "):
		p.s.CPU = strings.TrimPrefix(line, "cpu: ")
	case strings.HasPrefix(line, "goos: "):
		p.s.GOOS = strings.TrimPrefix(line, "goos: ")
	case strings.HasPrefix(line, "goarch: "):
		p.s.GOARCH = strings.TrimPrefix(line, "goarch: ")
	case line == "FAIL" || strings.HasPrefix(line, "FAIL\t") || strings.HasPrefix(line, "FAIL "):
		p.s.PackageFailed = true
	case strings.HasPrefix(line, "panic: "), strings.HasPrefix(line, "fatal error: "),
		strings.HasPrefix(line, "SIGQUIT: "), strings.HasPrefix(line, "*** Test killed"):
		p.s.PackageFailed = true
		p.Problem(line)
	case !strings.HasPrefix(line, "exit status "):
		p.other = line
	}
}

// start notes a benchmark named by an "=== RUN" line or, in -v output,
// by the line with its bare name.
func (p *Parser) start(name string) {
	p.current = name
	p.s.known[name] = true
	b := p.get(name)
	if !b.started {
		b.started = true
		p.progress(Progress{"start", b})
	}
}

// name returns a benchmark's name without the -GOMAXPROCS suffix that
// result lines (and a later run's FAIL line) add.
func (p *Parser) name(s string) string {
	if p.s.known[s] {
		return s
	}
	if m := procsRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return s
}

func (p *Parser) get(name string) *Bench {
	b := p.s.byName[name]
	if b == nil {
		b = &Bench{Name: name, Values: map[string][]float64{}}
		p.s.byName[name] = b
		p.s.Benches = append(p.s.Benches, b)
	}
	return b
}

// marker handles "--- FAIL: X", "--- SKIP: X", "--- BENCH: X" and
// "--- PASS: X"; the indented lines after one belong to X.
func (p *Parser) marker(line string) {
	kind, rest, ok := strings.Cut(strings.TrimPrefix(line, "--- "), ": ")
	if !ok {
		return
	}
	name := p.name(strings.TrimSpace(durationRE.ReplaceAllString(rest, "")))
	if !strings.HasPrefix(name, "Benchmark") {
		return
	}
	p.block = name
	switch kind {
	case "SKIP":
		p.mark(p.get(name), "skip")
	case "FAIL":
		p.mark(p.get(name), "fail")
	}
}

// mark records a SKIP or FAIL of b. Its reason is the last log entry b
// wrote since its previous result or marker (go test -json and -v put the
// log first); if there is none, it is the log that follows (plain output
// puts it after).
func (p *Parser) mark(b *Bench, kind string) {
	reason := &b.SkipReason
	if kind == "skip" {
		if !b.Skipped {
			defer p.progress(Progress{"skip", b})
		}
		b.Skipped = true
	} else {
		reason = &b.FailReason
		if !b.Failed {
			defer p.progress(Progress{"fail", b})
		}
		b.Failed = true
	}
	switch {
	case len(b.logs) > b.mark:
		*reason = b.logs[len(b.logs)-1]
		b.pending = ""
	case *reason == "":
		b.pending = kind
	}
	b.mark = len(b.logs)
}

func (p *Parser) indented(line string) {
	if p.waiting != "" {
		if n, pairs, ok := parseResult(line); ok {
			name := p.waiting
			p.waiting = ""
			p.result(name, n, pairs)
			return
		}
	}
	indent := len(line) - len(strings.TrimLeft(line, " \t"))
	if b := p.lastLog; b != nil && indent > p.lastIndent {
		// A continuation line of a multi-line log entry (even one that
		// looks like an entry, as compiler output does), kept up to a point.
		last := &b.logs[len(b.logs)-1]
		switch {
		case strings.HasSuffix(*last, moreLines):
		case len(*last) > 400:
			*last += moreLines
		default:
			*last += "; " + strings.TrimSpace(line)
		}
		p.pendingReason(b)
		return
	}
	p.lastLog = nil
	m := logEntryRE.FindStringSubmatch(line)
	target := p.block
	if target == "" {
		target = p.current
	}
	if m == nil || target == "" {
		return
	}
	b := p.get(target)
	b.logs = append(b.logs, strings.TrimSpace(m[1]))
	p.lastLog, p.lastIndent = b, indent
	p.pendingReason(b)
}

// moreLines ends a log entry whose further lines were left out.
const moreLines = " […]"

// pendingReason takes b's latest log entry as the reason of a SKIP or FAIL
// that came before its log (plain output).
func (p *Parser) pendingReason(b *Bench) {
	switch b.pending {
	case "skip":
		b.SkipReason = b.logs[len(b.logs)-1]
	case "fail":
		b.FailReason = b.logs[len(b.logs)-1]
	default:
		return
	}
	b.mark = len(b.logs)
}

// benchLine is a line that starts with "Benchmark": a header naming the
// benchmark about to run (-v, -json), a result, or the name of one whose
// results follow on a later line.
func (p *Parser) benchLine(line string) {
	name, rest, hasTab := strings.Cut(line, "\t")
	name = strings.TrimSpace(name)
	if !hasTab {
		if f := strings.Fields(line); len(f) == 1 {
			p.start(f[0])
		}
		return
	}
	if n, pairs, ok := parseResult(rest); ok {
		p.waiting = ""
		p.result(name, n, pairs)
		return
	}
	// The benchmark wrote something before its results (plain output
	// prints the name first): the results follow on a line of their own,
	// and what it wrote may be a "--- FAIL: X" line.
	p.waiting = name
	p.textLine(strings.TrimLeft(rest, " \t"))
}

type pair struct {
	value float64
	unit  string
}

// parseResult parses "  1\t  0.0701 bus/baseline\t  87024 events/s": the
// iteration count and the metrics.
func parseResult(s string) (n int, pairs []pair, ok bool) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f)%2 != 1 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return 0, nil, false
	}
	for i := 1; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, nil, false
		}
		pairs = append(pairs, pair{v, f[i+1]})
	}
	return n, pairs, true
}

func (p *Parser) result(rawName string, n int, pairs []pair) {
	b := p.get(p.name(rawName))
	if len(pairs) == 0 {
		// A run that skipped after an earlier run of the same benchmark
		// reported: go test prints the name and "1", and nothing else.
		p.mark(b, "skip")
		return
	}
	b.Runs++
	b.pending = ""
	b.mark = len(b.logs)
	for _, m := range pairs {
		if m.unit == "ns/op" {
			continue
		}
		if _, seen := b.Values[m.unit]; !seen {
			b.Units = append(b.Units, m.unit)
		}
		b.Values[m.unit] = append(b.Values[m.unit], m.value)
	}
	p.progress(Progress{"done", b})
}
