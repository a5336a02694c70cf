package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeUseIt runs the "Use it" block of README.md as written, in bash,
// on a fresh SQLite store, so that the README cannot drift from the
// product. The node applies events a few milliseconds after they are
// written, so the ./bam the block runs is a wrapper that retries a read
// (instance get) until it answers, for up to 10 s: a user typing the lines
// never sees the difference.
func TestReadmeUseIt(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 is not installed; the README's last line uses it")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)## Use it\n+```sh\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal(`README.md has no "## Use it" section with a sh block`)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	wrapper := `#!/usr/bin/env bash
# The real bam, retrying a read of an instance the node may not have applied yet.
if [ "$1" = instance ] && [ "$2" = get ]; then
  for _ in $(seq 1 100); do "` + bamBinary + `" "$@" 2>/dev/null && exit 0; sleep 0.1; done
fi
exec "` + bamBinary + `" "$@"
`
	var script strings.Builder
	script.WriteString("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n")
	for _, line := range strings.Split(string(block[1]), "\n") {
		switch {
		case strings.HasPrefix(line, "go build -o bam ./cmd/bam"):
			// The test's own build of bam stands in for it.
			script.WriteString("cat > bam <<'WRAPPER'\n" + wrapper + "WRAPPER\nchmod +x bam\n")
		case strings.HasPrefix(line, "./bam serve &"):
			// The node's logs go to a file the test shows on failure.
			script.WriteString("./bam serve >serve.log 2>&1 &\n")
		default:
			script.WriteString(line + "\n")
		}
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf("README's Use it block failed: %v\n%s\nnode log:\n%s\nscript:\n%s", err, out, logs, script.String())
	}
	for _, want := range []string{"PO-1042", "PO-1044", "Contoso"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the block's output does not show %s:\n%s", want, out)
		}
	}
}
