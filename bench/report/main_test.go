package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/bench/internal/benchrun"
)

// testdata holds the saved go test outputs the parser is tested on.
const testdata = "../internal/benchrun/testdata/"

func fakeMachine(context.Context, string) benchrun.Machine {
	return benchrun.Machine{Commit: "abc1234", Go: "go version go1.26.8 linux/amd64", CPU: "AMD EPYC, 2 logical CPUs",
		Memory: "23.4 GiB", Kernel: "Linux 6.18.0", PostgreSQL: "unreachable (test)", SQLite: "modernc.org/sqlite v1.62.0"}
}

func runReport(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb, fakeMachine)
	return code, out.String(), errb.String()
}

func tempDoc(t *testing.T) (file, doc string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc = docHead + beginMarker + "\nnot generated yet: run go run ./bench/report\n" + endMarker + docTail
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, doc
}

// A run with failures still writes what it got, and exits 1.
func TestRunFromWritesAndFails(t *testing.T) {
	file, _ := tempDoc(t)
	code, stdout, stderr := runReport(t, "-from", testdata+"run.json", "-write", file)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	got, _ := os.ReadFile(file)
	want := docHead + beginMarker + "\n\n" + strings.TrimRight(stdout, "\n") + "\n\n" + endMarker + docTail
	if string(got) != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{
		"| source | rendered from the saved stream `run.json`",
		"| date | 20", " UTC, took ",
		"| CPU (go test) | AMD EPYC |", "| commit (now) | abc1234 |",
		"| BenchmarkDrain/sqlite/batch=5000 | B/event | 172 | 172 | 172 | 3 |",
		"| BenchmarkHandoff/sqlite | **FAIL**: build bam: exit status 1",
		"over the runs in the stream",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
}

// go test passed, a later run failed: still exit 1.
func TestRunFromLaterFailure(t *testing.T) {
	code, stdout, _ := runReport(t, "-from", testdata+"later-fail.txt", "-write", "")
	if code != 1 || !strings.Contains(stdout, "**FAIL**: second run failed") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
}

func TestRunFromPassing(t *testing.T) {
	file, _ := tempDoc(t)
	code, stdout, stderr := runReport(t, "-from", testdata+"later-skip.json", "-write", file)
	if code != 0 || !strings.Contains(stderr, "wrote "+file) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "| BenchmarkHandoff/postgres | skipped in some runs: second run skipped |") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// Nothing reported: the file keeps its previous table.
func TestRunFromNothingLeavesTheFile(t *testing.T) {
	file, doc := tempDoc(t)
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("PASS\nok  \tgithub.com/bam-dev/bam/bench\t0.01s\n"), 0o644)
	code, _, stderr := runReport(t, "-from", empty, "-write", file)
	if got, _ := os.ReadFile(file); code != 1 || string(got) != doc || !strings.Contains(stderr, "left as it was") {
		t.Errorf("exit %d, stderr %q, file changed: %v", code, stderr, string(got) != doc)
	}
}

func TestRunRefusesAFileWithoutMarkers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	os.WriteFile(file, []byte(docHead), 0o644)
	code, stdout, stderr := runReport(t, "-from", testdata+"run.json", "-write", file)
	if got, _ := os.ReadFile(file); code != 2 || string(got) != docHead || stdout != "" ||
		!strings.Contains(stderr, file+" has no "+beginMarker+" and "+endMarker) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-count", "0"}, "-count must be at least 1"},
		{[]string{"-reps", "-1"}, "-reps must not be negative"},
		{[]string{"-timeout", "0s"}, "-timeout must be positive"},
		{[]string{"-from", "x.json", "-json", "y.json"}, "with -from nothing runs"},
		{[]string{"-from", "x.json", "-bench", "Drain"}, "with -from nothing runs"},
		{[]string{"Drain"}, "unexpected arguments"},
	} {
		code, _, stderr := runReport(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func TestRunHeader(t *testing.T) {
	o, err := parseFlags([]string{"-bench", "Drain$/sqlite", "-count", "2", "-reps", "10"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, r := range runHeader(o, fakeMachine(context.Background(), ""), time.Now(), "0.5 0.6 0.7", "1.0 0.9 0.8") {
		rows[r.Label] = r.Value
	}
	for label, want := range map[string]string{
		"rerun":                       "`go run ./bench/report -bench 'Drain$/sqlite' -count 2 -reps 10`",
		"go test":                     "`BAM_BENCH_REPS=10 go test -run '^$' -bench 'Drain$/sqlite' -benchtime 1x -count 2 -timeout 1h0m0s -json ./bench/`",
		"BAM_BENCH_REPS":              "10",
		"load average (1, 5, 15 min)": "0.5 0.6 0.7 at the start, 1.0 0.9 0.8 at the end",
		"commit":                      "abc1234",
		"SQLite":                      "modernc.org/sqlite v1.62.0",
	} {
		if rows[label] != want {
			t.Errorf("%s: %q, want %q", label, rows[label], want)
		}
	}
}
