package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// The programs the docs' blocks run through this test binary: TestDocs puts
// links to it named like them first on PATH. Each waits until the nodes the
// blocks started have applied what was written, then becomes the real
// program (exec): a reader typing the commands one by one gives the nodes
// those milliseconds without noticing. bam serve records itself first, so
// that the others know what to wait for and TestDocs what to stop.
var docsCommands = []string{"bam", "curl", "sqlite3", "psql"}

// The environment TestDocs gives the blocks' commands.
const (
	docsStateEnv = "BAM_DOCS_STATE" // the directory of the file's run: nodes started, their logs, outputs
	docsBamEnv   = "BAM_DOCS_BAM"   // the bam built for the test
	docsPathEnv  = "BAM_DOCS_PATH"  // PATH without the links, to find the real programs
	docsModeEnv  = "BAM_DOCS_MODE"  // "syntax": check bam's commands instead of running them
)

// caughtUpWithin bounds the wait for nodes before a command; a node that is
// slower than this shows in the command's output, not as a hang.
const caughtUpWithin = 20 * time.Second

// runAsDocsCommand is how this test binary behaves when it was started
// through one of TestDocs's links; ok is false otherwise.
func runAsDocsCommand() (code int, ok bool) {
	state := os.Getenv(docsStateEnv)
	name := filepath.Base(os.Args[0])
	if state == "" || !slices.Contains(docsCommands, name) {
		return 0, false
	}
	args := os.Args[1:]
	if os.Getenv(docsModeEnv) == "syntax" {
		if name != "bam" {
			return 0, true // only bam's commands are checked
		}
		if err := checkBamSyntax(os.Getenv(docsBamEnv), args); err != nil {
			fmt.Fprintln(os.Stderr, "docs-test:", err)
			return 1, true
		}
		return 0, true
	}
	path := os.Getenv(docsBamEnv)
	if name != "bam" {
		var err error
		if path, err = lookPathIn(name, os.Getenv(docsPathEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "docs-test: %s is not installed: %v\n", name, err)
			return 127, true
		}
	}
	argv, env := append([]string{name}, args...), os.Environ()
	if name == "bam" && subcommand(args) == "serve" {
		n, err := recordServe(state, args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "docs-test:", err)
			return 1, true
		}
		// The node's output goes to its own log, which TestDocs shows when
		// a block fails: sh opens it and becomes bam, in this process.
		argv = append([]string{"sh", "-c", `exec "$0" "$@" >"$BAM_DOCS_LOG" 2>&1`, path}, args...)
		path, env = "/bin/sh", append(env, "BAM_DOCS_LOG="+n.Log)
	} else {
		waitForServes(state)
	}
	err := syscall.Exec(path, argv, env)
	fmt.Fprintf(os.Stderr, "docs-test: exec %s: %v\n", path, err)
	return 1, true
}

func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// subcommand is the first argument that is not a flag (the global flags
// --store, --log-format and --log-level take a value).
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--store" || a == "--log-format" || a == "--log-level":
			i++
		case !strings.HasPrefix(a, "-"):
			return a
		}
	}
	return ""
}

// flagValue is the value of --name in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// servedNode is what a `bam serve` of a block recorded about itself.
type servedNode struct {
	PID   int    `json:"pid"`
	Start string `json:"start"` // when the process started (Linux), so that a pid used again is not taken for it
	Store string `json:"store"` // its URL, a SQLite path made absolute
	HTTP  string `json:"http"`  // its --http address, if any
	Log   string `json:"log"`   // where its stdout and stderr go
}

// recordServe writes down the node about to start: this process, which
// becomes it.
func recordServe(state string, args []string) (servedNode, error) {
	url := cmp.Or(flagValue(args, "--store"), os.Getenv("BAM_STORE"), storeurl.Default)
	if path, ok := storeurl.SQLitePath(url); ok {
		abs, err := filepath.Abs(path)
		if err != nil {
			return servedNode{}, err
		}
		url = "sqlite:" + abs
	}
	n := servedNode{PID: os.Getpid(), Start: procStart(os.Getpid()), Store: url, HTTP: flagValue(args, "--http"),
		Log: filepath.Join(state, fmt.Sprintf("serve-%d.log", os.Getpid()))}
	b, _ := json.Marshal(n)
	file := filepath.Join(state, fmt.Sprintf("serve-%d.json", n.PID))
	if err := os.WriteFile(file+".new", b, 0o644); err != nil {
		return n, err
	}
	return n, os.Rename(file+".new", file) // whole, for the commands that read it
}

// servedNodes returns the nodes the blocks of a file started, alive or not.
func servedNodes(state string) []servedNode {
	files, _ := filepath.Glob(filepath.Join(state, "serve-*.json"))
	var out []servedNode
	for _, f := range files {
		var n servedNode
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// alive says whether the node runs: its process exists, is not a zombie
// (a node started with & in a block is nobody's child once its bash exits,
// and may stay unreaped), and is the one that recorded itself (pids are
// used again).
func (n servedNode) alive() bool {
	if syscall.Kill(n.PID, 0) != nil {
		return false
	}
	state, start, ok := procStat(n.PID)
	if !ok {
		return true // no /proc: the pid is all there is to go by
	}
	return state != "Z" && start == n.Start
}

// procStart is when a process started, in clock ticks after boot, or ""
// where there is no /proc.
func procStart(pid int) string {
	_, start, _ := procStat(pid)
	return start
}

// procStat reads a process's state and start time (fields 3 and 22 of
// /proc/PID/stat).
func procStat(pid int) (state, start string, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", false
	}
	_, after, _ := strings.Cut(string(stat), ") ") // the name may hold spaces
	fields := strings.Fields(after)
	if len(fields) < 20 {
		return "", "", false
	}
	return fields[0], fields[19], true
}

// waitForServes waits, up to caughtUpWithin, until every node the blocks
// started and that still runs has joined its pool, serves its HTTP
// address, and its pool owns every enabled session and has applied every
// event waiting in a buffer source.
func waitForServes(state string) {
	ctx, cancel := context.WithTimeout(context.Background(), caughtUpWithin)
	defer cancel()
	for _, n := range servedNodes(state) {
		if !n.alive() {
			continue
		}
		st, err := storeurl.Open(ctx, n.Store)
		if err != nil {
			continue
		}
		for n.alive() && !caughtUp(ctx, st, n) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond) // polls real processes, in a docs command that has no *testing.T
		}
		st.Close()
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "docs-test: node pid %d has not caught up after %v\n", n.PID, caughtUpWithin)
			return
		}
	}
}

func caughtUp(ctx context.Context, st store.Store, n servedNode) bool {
	nodes, err := st.Nodes(ctx)
	if err != nil || !slices.ContainsFunc(nodes, func(m store.NodeRow) bool { return m.PID == n.PID }) {
		return false
	}
	if n.HTTP != "" {
		c, err := net.DialTimeout("tcp", n.HTTP, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return false
	}
	for _, s := range sessions {
		if !s.Applies() { // disabled or paused: no node applies it
			continue
		}
		if s.Owner == "" {
			return false
		}
		if s.Kind == store.KindBuffer {
			if backlog, err := st.BufferBacklog(ctx, s.SessionID, s.Checkpoint); err != nil || backlog > 0 {
				return false
			}
		}
	}
	return true
}

// checkBamSyntax checks that bam ARGS names a command and flags bam has,
// without running it: with --help, bam parses the flags (an unknown one is
// an error) and shows the help of the command the words name, whose usage
// line says which one it found; a word left over where that command has
// subcommands is a subcommand bam does not have.
func checkBamSyntax(bam string, args []string) error {
	line := "bam " + strings.Join(args, " ")
	for _, a := range args {
		if strings.HasPrefix(a, "[") || strings.HasSuffix(a, "]") {
			return fmt.Errorf("%s: %s is usage notation, which bam would take as an argument: write the command as it is typed", line, a)
		}
	}
	out, err := exec.Command(bam, append(slices.Clone(args), "--help")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", line, err, out)
	}
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	_, usage, _ := strings.Cut(string(out), "Usage:\n")
	usage, _, _ = strings.Cut(strings.TrimSpace(usage), "\n")
	found := 0
	for found < len(words) && strings.HasPrefix(usage+" ", "bam "+strings.Join(words[:found+1], " ")+" ") {
		found++
	}
	if found < len(words) && strings.Contains(string(out), "Available Commands:") {
		return fmt.Errorf("%s: bam %s has no command %q", line, strings.Join(words[:found], " "), words[found])
	}
	return nil
}
