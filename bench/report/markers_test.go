package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	docHead = "# Benchmarks\n\nIntro.\n\n## Latest full run (generated)\n\n"
	docTail = "\n## Rerun\n\nSays `" + beginMarker + "` in passing.\n\n| a | b |\n"
)

func TestReplaceBetweenMarkers(t *testing.T) {
	doc := docHead + beginMarker + "\nnot generated yet: run go run ./bench/report\n" + endMarker + docTail
	out, err := replaceBetweenMarkers([]byte(doc), "| x | y |\n| --- | --- |\n", "BENCH.md")
	if err != nil {
		t.Fatal(err)
	}
	want := docHead + beginMarker + "\n\n| x | y |\n| --- | --- |\n\n" + endMarker + docTail
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
	// Again, with another body: only the inside changes.
	again, err := replaceBetweenMarkers(out, "new\n", "BENCH.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := docHead + beginMarker + "\n\nnew\n\n" + endMarker + docTail; string(again) != want {
		t.Fatalf("second replace:\n%s\nwant:\n%s", again, want)
	}
}

func TestReplaceBetweenMarkersKeepsTheOutsideByteForByte(t *testing.T) {
	head := "# B\r\n\r\ntrailing spaces   \r\n\t tabs\r\n  " + beginMarker + "  \r\n"
	tail := endMarker + "\r\nno newline at the end"
	doc := head + "old\r\nold\r\n" + tail
	out, err := replaceBetweenMarkers([]byte(doc), "a\nb", "BENCH.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), head) || !strings.HasSuffix(string(out), tail) {
		t.Fatalf("the outside changed:\n%q", out)
	}
	if inside := strings.TrimSuffix(strings.TrimPrefix(string(out), head), tail); inside != "\r\na\r\nb\r\n\r\n" {
		t.Errorf("inside %q: want the file's CRLF line ends", inside)
	}
}

func TestReplaceBetweenMarkersRefuses(t *testing.T) {
	for _, c := range []struct {
		name, doc, want string
	}{
		{"missing", docHead + "text\n" + docTail, "BENCH.md has no " + beginMarker + " and " + endMarker + " lines"},
		{"only begin", docHead + beginMarker + "\n" + docTail, "BENCH.md has 1 " + beginMarker + " lines and 0 " + endMarker + " lines"},
		{"only end", docHead + endMarker + "\n" + docTail, "has 0 " + beginMarker + " lines and 1 " + endMarker},
		{"two begins", beginMarker + "\n" + beginMarker + "\n" + endMarker + "\n", "has 2 " + beginMarker + " lines and 1"},
		{"two pairs", beginMarker + "\n" + endMarker + "\n" + beginMarker + "\n" + endMarker + "\n", "has 2 " + beginMarker + " lines and 2"},
		{"end first", endMarker + "\n" + beginMarker + "\n", "has its " + endMarker + " line before its " + beginMarker},
		{"inside a line", "see " + beginMarker + " and " + endMarker + "\n", "has no"},
	} {
		_, err := replaceBetweenMarkers([]byte(c.doc), "x", "BENCH.md")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "not changed") {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestWriteSection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "BENCHMARKS.md")
	doc := docHead + beginMarker + "\nold\n" + endMarker + docTail
	if err := os.WriteFile(file, []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(file, "table\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	if want := docHead + beginMarker + "\n\ntable\n\n" + endMarker + docTail; string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	// Without markers: an error naming the file, and the file untouched.
	plain := filepath.Join(dir, "PLAIN.md")
	if err := os.WriteFile(plain, []byte(docHead), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{func() error { return checkMarkers(plain) }, func() error { return writeSection(plain, "x") }} {
		if err := f(); err == nil || !strings.Contains(err.Error(), plain) || !strings.Contains(err.Error(), beginMarker) {
			t.Errorf("error %v, want one naming %s and the markers", err, plain)
		}
	}
	if got, _ := os.ReadFile(plain); string(got) != docHead {
		t.Errorf("a file without markers changed: %q", got)
	}
}
