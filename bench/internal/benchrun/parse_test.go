package benchrun

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// The files in testdata are real go test output, of a stand-in package
// with the benchmarks' names and shapes: run.* has -count 3 (2 for
// run-v.txt), PostgreSQL skipped, BenchmarkFailover/sqlite failing in its
// third run and BenchmarkHandoff/sqlite in its first; later-* has a
// benchmark that fails or skips in its second run only, for which go test
// itself passes.

func parseString(t *testing.T, stream string) *Stream {
	t.Helper()
	p := NewParser(nil)
	if err := p.Feed(strings.NewReader(stream), nil); err != nil {
		t.Fatal(err)
	}
	return p.Finish()
}

func parseTestdata(t *testing.T, name string) *Stream {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return parseString(t, string(data))
}

// digest is what a stream says, in a form tests compare.
func digest(s *Stream) string {
	var b strings.Builder
	for _, x := range s.Reported() {
		fmt.Fprintf(&b, "%s runs=%d", x.Name, x.Runs)
		if x.Skipped {
			fmt.Fprintf(&b, " SKIP(%s)", x.SkipReason)
		}
		if x.Failed {
			fmt.Fprintf(&b, " FAIL(%s)", x.FailReason)
		}
		for _, u := range x.Units {
			fmt.Fprintf(&b, " %s=%v", u, x.Values[u])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "package failed=%v problems=%q\n", s.PackageFailed, s.Problems)
	return b.String()
}

const pgSkip = "SKIPPED: PostgreSQL is unreachable (set BAM_TEST_PG to point at a server): failed to connect to `user=postgres database=postgres`: 127.0.0.1:5432 (127.0.0.1): dial error: dial tcp 127.0.0.1:5432: connect: connection refused"

func TestParseJSON(t *testing.T) {
	s := parseTestdata(t, "run.json")
	var names []string
	for _, b := range s.Reported() {
		names = append(names, b.Name)
	}
	want := []string{
		"BenchmarkDrain/postgres/batch=1000", "BenchmarkDrain/postgres/batch=5000",
		"BenchmarkDrain/sqlite/batch=1000", "BenchmarkDrain/sqlite/batch=5000",
		"BenchmarkFailover/sqlite", "BenchmarkHandoff/sqlite",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("reported %q, want %q (parents and the parent's echo of a FAIL left out)", names, want)
	}
	pg := s.Bench("BenchmarkDrain/postgres/batch=1000")
	if !pg.Skipped || pg.SkipReason != pgSkip || pg.Failed || pg.Runs != 0 {
		t.Errorf("postgres: skipped=%v reason=%q failed=%v runs=%d", pg.Skipped, pg.SkipReason, pg.Failed, pg.Runs)
	}
	sq := s.Bench("BenchmarkDrain/sqlite/batch=1000")
	if sq.Runs != 3 || sq.Skipped || sq.Failed {
		t.Errorf("sqlite: runs=%d skipped=%v failed=%v", sq.Runs, sq.Skipped, sq.Failed)
	}
	if u := []string{"B/event", "baseline_rows/s", "bus/baseline", "bus_events/s", "naive_events/s"}; !slices.Equal(sq.Units, u) {
		t.Errorf("units %q, want %q (no ns/op)", sq.Units, u)
	}
	if v := sq.Values["bus_events/s"]; !slices.Equal(v, []float64{56000, 57000, 58000}) {
		t.Errorf("bus_events/s %v", v)
	}
	if v := sq.Values["bus/baseline"]; !slices.Equal(v, []float64{0.1991, 0.2030, 0.2069}) {
		t.Errorf("bus/baseline %v", v)
	}
	fo := s.Bench("BenchmarkFailover/sqlite")
	if !fo.Failed || fo.Runs != 2 || len(fo.Values["median_ms"]) != 2 {
		t.Errorf("failover: failed=%v runs=%d median_ms=%v", fo.Failed, fo.Runs, fo.Values["median_ms"])
	}
	if want := "rep 4: node 2 never took over session orders/1 within 10s; sessions: orders/0 owner=node-1 epoch=4; orders/1 owner=node-1 epoch=3"; fo.FailReason != want {
		t.Errorf("failover reason %q, want %q", fo.FailReason, want)
	}
	ho := s.Bench("BenchmarkHandoff/sqlite")
	if want := "build bam: exit status 1; # github.com/bam-dev/bam/cmd/bam; cmd/bam/main.go:12:2: undefined: serve"; !ho.Failed || ho.FailReason != want {
		t.Errorf("handoff: failed=%v reason %q, want %q", ho.Failed, ho.FailReason, want)
	}
	if !s.PackageFailed || !s.Failed() {
		t.Error("the package failed, the stream says it did not")
	}
	if s.CPU != "AMD EPYC" || s.GOOS != "linux" || s.Start.IsZero() || !s.End.After(s.Start) {
		t.Errorf("cpu=%q goos=%q start=%v end=%v", s.CPU, s.GOOS, s.Start, s.End)
	}
}

// go test -json may split a line over several output events (a
// benchmark's name and its results come in two): the parse must not
// depend on where.
func TestParseJSONSplitOutput(t *testing.T) {
	for _, file := range []string{"run.json", "later-fail.json", "later-skip.json"} {
		data, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		want := digest(parseString(t, string(data)))
		for _, size := range []int{1, 2, 3, 7, 40} {
			var out strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatal(err)
				}
				text, _ := ev["Output"].(string)
				if text == "" {
					out.WriteString(line + "\n")
					continue
				}
				for len(text) > 0 {
					n := min(size, len(text))
					ev["Output"] = text[:n]
					text = text[n:]
					chunk, _ := json.Marshal(ev)
					out.Write(append(chunk, '\n'))
				}
			}
			if got := digest(parseString(t, out.String())); got != want {
				t.Errorf("%s split into %d-byte events:\n%s\nwant\n%s", file, size, got, want)
			}
		}
	}
}

func TestParseJSONSplitResultLine(t *testing.T) {
	ev := func(test, out string) string {
		b, _ := json.Marshal(map[string]string{"Action": "output", "Package": "github.com/bam-dev/bam/bench", "Test": test, "Output": out})
		return string(b) + "\n"
	}
	const x = "BenchmarkDrain/sqlite/batch=1000"
	stream := ev(x, "=== RUN   "+x+"\n") + ev(x, x+"\n") +
		ev(x, x+"-2   \t") + ev(x, "       1\t     0.07") + ev(x, "010 bus/baseline\t     87") + ev(x, "024 bus_events/s\n") +
		ev("", x+"-2   \t") + ev("", "       1\t     0.08000 bus/baseline\t     90000 bus_events/s") + ev("", "\n")
	b := parseString(t, stream).Bench(x)
	if b == nil || !slices.Equal(b.Values["bus_events/s"], []float64{87024, 90000}) || !slices.Equal(b.Values["bus/baseline"], []float64{0.0701, 0.08}) {
		t.Fatalf("got %+v", b)
	}
}

// Plain output has no SKIP lines without -v, and puts a FAIL's log after
// it; what it does have must read the same as the JSON.
func TestParsePlain(t *testing.T) {
	js := parseTestdata(t, "run.json")
	var want strings.Builder
	for _, line := range strings.SplitAfter(digest(js), "\n") {
		if !strings.Contains(line, "SKIP(") {
			want.WriteString(line)
		}
	}
	if got := digest(parseTestdata(t, "run.txt")); got != want.String() {
		t.Errorf("plain:\n%s\nwant (the JSON's, skips aside)\n%s", got, want.String())
	}

	v := parseTestdata(t, "run-v.txt") // -count 2, -v: the skips are there
	if b := v.Bench("BenchmarkDrain/postgres/batch=5000"); b == nil || b.SkipReason != pgSkip {
		t.Errorf("-v: postgres skip %+v", b)
	}
	if b := v.Bench("BenchmarkDrain/sqlite/batch=5000"); b == nil || !slices.Equal(b.Values["bus_events/s"], []float64{92000, 93000}) {
		t.Errorf("-v: sqlite %+v", b)
	}
	if b := v.Bench("BenchmarkHandoff/sqlite"); b == nil || !strings.HasPrefix(b.FailReason, "build bam: exit status 1") {
		t.Errorf("-v: handoff %+v", b)
	}
}

// A FAIL in a later run of -count: go test prints it twice (with and
// without -GOMAXPROCS), keeps going, and passes.
func TestParseFailInALaterRun(t *testing.T) {
	for _, file := range []string{"later-fail.json", "later-fail.txt"} {
		s := parseTestdata(t, file)
		b := s.Bench("BenchmarkHandoff/postgres")
		if b == nil || !b.Failed || b.Runs != 2 || !slices.Equal(b.Values["n"], []float64{1, 3}) {
			t.Errorf("%s: %+v", file, b)
			continue
		}
		if want := "second run failed; with more lines; and more"; b.FailReason != want {
			t.Errorf("%s: reason %q, want %q", file, b.FailReason, want)
		}
		if len(s.Reported()) != 1 || s.PackageFailed || !s.Failed() {
			t.Errorf("%s: reported %d, package failed %v, failed %v: want 1, false (go test passed), true", file, len(s.Reported()), s.PackageFailed, s.Failed())
		}
	}
}

// A skip in a later run shows only as a result line without metrics.
func TestParseSkipInALaterRun(t *testing.T) {
	for _, file := range []string{"later-skip.json", "later-skip.txt"} {
		s := parseTestdata(t, file)
		b := s.Bench("BenchmarkHandoff/postgres")
		if b == nil || !b.Skipped || b.SkipReason != "second run skipped" || b.Failed || b.Runs != 2 || !slices.Equal(b.Values["n"], []float64{1, 3}) {
			t.Errorf("%s: %+v", file, b)
		}
		if s.Failed() {
			t.Errorf("%s: a skip is not a failure", file)
		}
	}
}

// When go test ends in the middle (timeout, kill, panic), the benchmark
// that was running is failed with the reason, and the package too.
func TestParseEndedMidBenchmark(t *testing.T) {
	data, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	stream := string(data)
	cut := strings.Index(stream, `"Output":"    failover_test.go:44: rep 2: took over after 251 ms\n"}`)
	cut += strings.IndexByte(stream[cut:], '\n') + 1
	stream = stream[:cut] +
		`{"Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"SIGQUIT: quit\n"}` + "\n" +
		`{"Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"PC=0x47e9c1 m=0 sigcode=0\n"}` + "\n" +
		`{"Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"FAIL\tgithub.com/bam-dev/bam/bench\t61.2s\n"}` + "\n" +
		`{"Action":"fail","Package":"github.com/bam-dev/bam/bench","Elapsed":61.2}` + "\n"
	s := parseString(t, stream)
	b := s.Bench("BenchmarkFailover/sqlite")
	if b == nil || !b.Failed || b.Runs != 0 || !strings.Contains(b.FailReason, "go test ended before it finished (SIGQUIT: quit)") {
		t.Fatalf("failover: %+v", b)
	}
	if s.Bench("BenchmarkFailover").Failed {
		t.Error("the parent of the running benchmark is marked failed too")
	}
	if b := s.Bench("BenchmarkDrain/sqlite/batch=5000"); b.Failed || b.Runs != 3 {
		t.Errorf("a finished benchmark: %+v", b)
	}
	if !s.PackageFailed || !slices.Equal(s.Problems, []string{"SIGQUIT: quit"}) {
		t.Errorf("package failed %v, problems %q", s.PackageFailed, s.Problems)
	}
}

func TestParseNames(t *testing.T) {
	// GOMAXPROCS=1: no suffix; a name that ends in -digits of its own.
	s := parseString(t, "BenchmarkA\n=== RUN   BenchmarkA/batch-1000\nBenchmarkA/batch-1000\n"+
		"BenchmarkA/batch-1000 \t       1\t  5.000 x_ms\n"+
		"BenchmarkA/batch-1000-4 \t       1\t  7.000 x_ms\n"+
		"BenchmarkB-8 \t       1\t  123.0 ns/op\n")
	if b := s.Bench("BenchmarkA/batch-1000"); b == nil || !slices.Equal(b.Values["x_ms"], []float64{5, 7}) {
		t.Errorf("batch-1000: %+v", b)
	}
	b := s.Bench("BenchmarkB")
	if b == nil || b.Runs != 1 || len(b.Units) != 0 {
		t.Errorf("ns/op only: %+v", b)
	}
}

func TestParseResult(t *testing.T) {
	for _, c := range []struct {
		in    string
		n     int
		pairs []pair
		ok    bool
	}{
		{"       1\t         0.07010 bus/baseline\t     87024 bus_events/s", 1, []pair{{0.0701, "bus/baseline"}, {87024, "bus_events/s"}}, true},
		{"       1\t       130.0 ns/op", 1, []pair{{130, "ns/op"}}, true},
		{"       1", 1, nil, true},
		{"  3  1.5e+06 rows/s", 3, []pair{{1.5e6, "rows/s"}}, true},
		{"node-2 listening on 127.0.0.1:7071", 0, nil, false},
		{"       1\t  0.07 bus/baseline\t 87024", 0, nil, false},
		{"--- FAIL: BenchmarkX", 0, nil, false},
		{"", 0, nil, false},
	} {
		n, pairs, ok := parseResult(c.in)
		if n != c.n || !slices.Equal(pairs, c.pairs) || ok != c.ok {
			t.Errorf("parseResult(%q) = %d, %v, %v; want %d, %v, %v", c.in, n, pairs, ok, c.n, c.pairs, c.ok)
		}
	}
}

func TestParseBuildFailure(t *testing.T) {
	s := parseString(t, `{"ImportPath":"github.com/bam-dev/bam/bench [github.com/bam-dev/bam/bench.test]","Action":"build-output","Output":"# github.com/bam-dev/bam/bench [github.com/bam-dev/bam/bench.test]\n"}
{"ImportPath":"github.com/bam-dev/bam/bench [github.com/bam-dev/bam/bench.test]","Action":"build-output","Output":"./drain_test.go:2:17: undefined: prefill\n"}
{"ImportPath":"github.com/bam-dev/bam/bench [github.com/bam-dev/bam/bench.test]","Action":"build-fail"}
{"Time":"2026-11-25T21:12:49.421607777Z","Action":"start","Package":"github.com/bam-dev/bam/bench"}
{"Time":"2026-11-25T21:12:49.421714996Z","Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"FAIL\tgithub.com/bam-dev/bam/bench [build failed]\n"}
{"Time":"2026-11-25T21:12:49.421723789Z","Action":"fail","Package":"github.com/bam-dev/bam/bench","Elapsed":0,"FailedBuild":"github.com/bam-dev/bam/bench [github.com/bam-dev/bam/bench.test]"}
`)
	if !s.Failed() || len(s.Reported()) != 0 || !slices.Equal(s.Problems, []string{"build failed: ./drain_test.go:2:17: undefined: prefill"}) {
		t.Errorf("failed %v, reported %d, problems %q", s.Failed(), len(s.Reported()), s.Problems)
	}
}

// go test failed before any benchmark: its last line says why.
func TestParseFailureWithoutBenchmark(t *testing.T) {
	s := parseString(t, `{"Time":"2026-11-25T21:15:50.723765699Z","Action":"start","Package":"github.com/bam-dev/bam/bench"}
{"Time":"2026-11-25T21:15:50.745511601Z","Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"testing: invalid regexp for element 0 of -test.bench (\"[\"): error parsing regexp: missing closing ]: `+"`[`"+`\n"}
{"Time":"2026-11-25T21:15:50.745652179Z","Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"exit status 1\n"}
{"Time":"2026-11-25T21:15:50.745689795Z","Action":"output","Package":"github.com/bam-dev/bam/bench","Output":"FAIL\tgithub.com/bam-dev/bam/bench\t0.021s\n"}
{"Time":"2026-11-25T21:15:50.745705769Z","Action":"fail","Package":"github.com/bam-dev/bam/bench","Elapsed":0.022}
`)
	want := "go test failed: testing: invalid regexp for element 0 of -test.bench (\"[\"): error parsing regexp: missing closing ]: `[`"
	if !s.Failed() || !slices.Equal(s.Problems, []string{want}) {
		t.Errorf("problems %q, want %q", s.Problems, want)
	}
	// A passing stream has no problem, whatever the benchmarks printed.
	if s := parseTestdata(t, "later-skip.txt"); len(s.Problems) != 0 {
		t.Errorf("problems %q", s.Problems)
	}
}
