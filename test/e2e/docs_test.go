package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/testpg"
)

// TestDocs runs every command block of README.md, DEVELOPERS.md and
// docs/*.md as written (docblocks_test.go says what a block is and how a
// marker before it changes how it runs), so that the docs cannot drift from
// the product. Each file runs in a directory of its own, the reader's
// checkout (examples/ is there), on a fresh store: bam's default, a SQLite
// file in bam-data/. Its blocks run in order, each in a new bash, and
// later blocks see what earlier ones did. bam is the binary TestMain built,
// on PATH and, once a block builds it, as ./bam; docsSubstitutions lists
// every other change made to the commands. A block without a marker fails
// the test when a command of it fails, when its output is not what the doc
// shows, or when it runs longer than blockTimeout.
func TestDocs(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repo, "README.md"), filepath.Join(repo, "DEVELOPERS.md")}, files...)
	links := docsLinks(t)
	for _, path := range files {
		file, _ := filepath.Rel(repo, path)
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := parseDoc(file, string(text))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(blocks, docBlock.runs) {
				return
			}
			r := newDocRun(t, repo, links, file, blocks)
			for _, problem := range r.run(blocks) {
				t.Error(problem)
			}
		})
	}
}

// blockTimeout bounds one block: a command that does not end (a node, a
// server) belongs in a block marked background.
const blockTimeout = 90 * time.Second

// stopTimeout bounds a node's clean stop on SIGTERM (bam serve's
// --stop-timeout is 10 s).
const stopTimeout = 15 * time.Second

// postgresPlaceholders are what the docs write for a PostgreSQL database of
// the reader's own; a file whose blocks use one gets a database of its own
// in its place.
var postgresPlaceholders = []string{"postgres://bam@apphost/shop", "$APP_DATABASE_URL"}

// docsSubstitutions are the only changes made to the docs' commands before
// they run, each for something a test does otherwise than a reader.
func docsSubstitutions(httpAddr, postgresURL string) *strings.Replacer {
	pairs := []string{
		// bam is built once, by TestMain, for every file.
		"go build -o bam ./cmd/bam", `ln -sf "$BAM_DOCS_LINKS/bam" bam`,
		"go run ./cmd/bam ", "bam ",
		// Files run side by side: each serves HTTP on a port of its own.
		"127.0.0.1:8480", httpAddr,
	}
	if postgresURL != "" {
		for _, p := range postgresPlaceholders {
			pairs = append(pairs, p, postgresURL)
		}
	}
	return strings.NewReplacer(pairs...)
}

// docsLinks makes the directory TestDocs puts first on PATH: the programs
// of docsCommands, each a link to this test binary.
func docsLinks(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range docsCommands {
		if err := os.Symlink(exe, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// docRun is the run of one file's blocks.
type docRun struct {
	file       string
	dir        string // the reader's checkout: where the blocks run
	state      string // docsStateEnv: the nodes started, their logs, the outputs
	env        []string
	subs       *strings.Replacer
	background []*exec.Cmd
	ended      []chan struct{} // closed when the background block of the same index exits
}

func newDocRun(t *testing.T, repo, links, file string, blocks []docBlock) *docRun {
	t.Helper()
	r := &docRun{file: file, dir: t.TempDir(), state: t.TempDir()}
	if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(r.dir, "examples")); err != nil {
		t.Fatal(err)
	}
	postgresURL := ""
	if usesAny(blocks, postgresPlaceholders) {
		postgresURL = testpg.NewDatabase(t)
	}
	r.subs = docsSubstitutions(freeAddr(t), postgresURL)
	path := os.Getenv("PATH")
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc([]string{"BAM_STORE=", "BAM_DOCS_", "PATH=", "GORACE="}, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, "PATH="+links+string(filepath.ListSeparator)+path, docsPathEnv+"="+path,
		docsStateEnv+"="+r.state, docsBamEnv+"="+bamBinary, "BAM_DOCS_LINKS="+links,
		// bam is built with -race, whose runtime sleeps 1 s at every exit
		// by default: a second per command.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	t.Cleanup(r.kill)
	return r
}

func usesAny(blocks []docBlock, words []string) bool {
	for _, b := range blocks {
		if !b.runs() {
			continue
		}
		for _, s := range append(slices.Clone(b.setup), b.steps...) {
			if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s.text, w) }) {
				return true
			}
		}
	}
	return false
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// run runs the blocks in order and returns what went wrong, then stops the
// nodes they started.
func (r *docRun) run(blocks []docBlock) (problems []string) {
	defer func() { problems = append(problems, r.stop()...) }()
	for _, b := range blocks {
		if !b.runs() {
			continue
		}
		where := fmt.Sprintf("%s:%d", r.file, b.line)
		if len(b.setup) > 0 {
			if out, err := r.runScript(b.setup, ""); err != nil {
				problems = append(problems, fmt.Sprintf("%s: the setup in its docs-test marker failed: %v\n%s%s", where, err, out, r.nodeLogs()))
				continue
			}
		}
		if b.background {
			if err := r.startBackground(b); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			}
			continue
		}
		mode := ""
		if b.syntax != "" {
			mode = "syntax"
		}
		out, err := r.runScript(b.steps, mode)
		switch {
		case err != nil && mode == "syntax":
			problems = append(problems, fmt.Sprintf("%s: a command of the block is not one bam has: %v\n%s", where, err, out))
			continue
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: the block failed: %v (a block that cannot run as written needs a marker: <!-- docs-test: skip (why) -->, syntax (why) or background)\n%s%s", where, err, out, r.nodeLogs()))
			continue
		}
		problems = append(problems, r.checkOutputs(b, out)...)
	}
	return problems
}

// checkOutputs compares what the block's commands printed with what the
// doc shows, and its output with its expect marker.
func (r *docRun) checkOutputs(b docBlock, out string) []string {
	var problems []string
	for _, s := range b.steps {
		if s.output == "" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(r.state, fmt.Sprintf("output-%d", s.line)))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: no output recorded: %v", r.file, s.line, err))
			continue
		}
		if err := checkOutput(s.output, string(got)); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %v", r.file, s.line, err))
		}
	}
	for _, want := range b.expect {
		if !strings.Contains(out, want) {
			problems = append(problems, fmt.Sprintf("%s:%d: the block's output does not show %s (docs-test: expect):\n%s", r.file, b.line, want, out))
		}
	}
	return problems
}

// script is the bash script of steps: each as written (after
// docsSubstitutions), the output of those the doc shows output for kept in
// a file, and a stop at the first that fails, naming its line.
func (r *docRun) script(steps []docStep) string {
	var s strings.Builder
	s.WriteString("set -o pipefail\n")
	for _, st := range steps {
		text := r.subs.Replace(st.text)
		fmt.Fprintf(&s, "# %s:%d\n", r.file, st.line)
		if st.output != "" {
			out := fmt.Sprintf(`"$%s/output-%d"`, docsStateEnv, st.line)
			fmt.Fprintf(&s, "{ %s\n} >%s\ndocs_status=$?; cat %s\n", text, out, out)
		} else {
			fmt.Fprintf(&s, "%s\ndocs_status=$?\n", text)
		}
		fmt.Fprintf(&s, "if [ \"$docs_status\" -ne 0 ]; then echo \"docs-test: the command at %s:%d exited with status $docs_status\" >&2; exit \"$docs_status\"; fi\n", r.file, st.line)
	}
	return s.String()
}

// command is bash running the steps in the file's directory, in a process
// group of its own, its output in a new file of the state directory.
func (r *docRun) command(steps []docStep, mode string) (*exec.Cmd, *os.File, error) {
	log, err := os.CreateTemp(r.state, "block-*.log")
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("bash", "-c", r.script(steps))
	cmd.Dir, cmd.Stdout, cmd.Stderr = r.dir, log, log
	cmd.Env = append(slices.Clone(r.env), docsModeEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, log, nil
}

// runScript runs steps to their end, or kills them after blockTimeout.
func (r *docRun) runScript(steps []docStep, mode string) (string, error) {
	cmd, log, err := r.command(steps, mode)
	if err != nil {
		return "", err
	}
	defer log.Close()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(blockTimeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err = cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("still running after %v, killed", blockTimeout)
	}
	out, _ := os.ReadFile(log.Name())
	return string(out), err
}

// startBackground starts a block that runs a node and returns once the
// node has recorded itself (the commands after it wait for it to be
// ready).
func (r *docRun) startBackground(b docBlock) error {
	before := len(servedNodes(r.state))
	cmd, log, err := r.command(b.steps, "")
	if err != nil {
		return err
	}
	defer log.Close()
	if err := cmd.Start(); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() { _ = cmd.Wait(); close(ended) }()
	deadline := time.Now().Add(caughtUpWithin)
	for len(servedNodes(r.state)) == before && time.Now().Before(deadline) {
		select {
		case <-ended:
			out, _ := os.ReadFile(log.Name())
			return fmt.Errorf("the background block ended before it started a node (bam serve):\n%s", out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.background, r.ended = append(r.background, cmd), append(r.ended, ended)
	if len(servedNodes(r.state)) == before {
		return fmt.Errorf("the background block started no node (bam serve) within %v", caughtUpWithin)
	}
	return nil
}

// stop stops the nodes the blocks started with SIGTERM, as an operator
// would, and says which did not stop cleanly in time, and which background
// block had ended before.
func (r *docRun) stop() []string {
	var problems []string
	for i, ended := range r.ended {
		select {
		case <-ended:
			out, _ := os.ReadFile(r.background[i].Stdout.(*os.File).Name())
			problems = append(problems, fmt.Sprintf("%s: a background block ended before the file's last block:\n%s%s", r.file, out, r.nodeLogs()))
		default:
		}
	}
	for _, n := range servedNodes(r.state) {
		if n.alive() {
			_ = syscall.Kill(n.PID, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(stopTimeout)
	for _, n := range servedNodes(r.state) {
		for n.alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polls a real process; a late one is a problem listed below, not a failure here
		}
		if n.alive() {
			problems = append(problems, fmt.Sprintf("%s: the node pid %d did not stop within %v of SIGTERM%s", r.file, n.PID, stopTimeout, r.nodeLogs()))
		}
	}
	for _, ended := range r.ended {
		select {
		case <-ended:
		case <-time.After(time.Until(deadline)):
		}
	}
	r.kill()
	return problems
}

// kill ends whatever the blocks left running, at the latest when the test
// ends.
func (r *docRun) kill() {
	for _, n := range servedNodes(r.state) {
		if n.alive() {
			_ = syscall.Kill(n.PID, syscall.SIGKILL)
		}
	}
	for _, cmd := range r.background {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// nodeLogs is the end of the log of each node the blocks started.
func (r *docRun) nodeLogs() string {
	var s strings.Builder
	for _, n := range servedNodes(r.state) {
		b, _ := os.ReadFile(n.Log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&s, "\nlog of the node pid %d (%s), its end:\n%s\n", n.PID, n.Store, strings.Join(lines, "\n"))
	}
	return s.String()
}
