package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// runAsBam makes the test binary behave as bam itself, for the processes
// that `bam demo` starts with os.Executable().
const runAsBam = "BAM_TEST_RUN_AS_BAM"

func TestMain(m *testing.M) {
	if os.Getenv(runAsBam) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for the goroutines of an in-process node.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one bam invocation printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// bench is a temporary SQLite store and a way to run bam on it.
type bench struct {
	t   *testing.T
	dir string
	url string
	env map[string]string
}

func newBench(t *testing.T) *bench {
	t.Helper()
	dir := t.TempDir()
	return &bench{t: t, dir: dir, url: "sqlite:" + filepath.Join(dir, "bam.db"), env: map[string]string{}}
}

// migrated returns a bench whose store is migrated.
func migrated(t *testing.T) *bench {
	t.Helper()
	b := newBench(t)
	b.ok("migrate")
	return b
}

// run runs bam in-process with --store set to the bench's store, stdin
// given as a string.
func (b *bench) run(stdin string, args ...string) result {
	b.t.Helper()
	return b.runCtx(context.Background(), stdin, args...)
}

func (b *bench) runCtx(ctx context.Context, stdin string, args ...string) result {
	b.t.Helper()
	var out, errOut syncBuffer
	args = append([]string{"--store", b.url}, args...)
	code := run(ctx, args, strings.NewReader(stdin), &out, &errOut, environOf(b.env))
	return result{out.String(), errOut.String(), code}
}

// ok runs bam and fails the test unless it exits 0.
func (b *bench) ok(args ...string) result {
	b.t.Helper()
	r := b.run("", args...)
	if r.code != 0 {
		b.t.Fatalf("bam %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs bam and fails the test unless it exits with code and its
// stderr holds every want.
func (b *bench) fails(code int, stdin string, args []string, want ...string) result {
	b.t.Helper()
	r := b.run(stdin, args...)
	if r.code != code {
		b.t.Fatalf("bam %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			b.t.Errorf("bam %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// environOf is vars as os.Environ gives an environment, in name order.
func environOf(vars map[string]string) []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// audit returns bam audit --json, the latest first.
func (b *bench) audit() []auditEntry {
	b.t.Helper()
	var audit []auditEntry
	if err := json.Unmarshal([]byte(b.ok("audit", "--json").stdout), &audit); err != nil {
		b.t.Fatal(err)
	}
	return audit
}

// store opens the bench's store directly, closed at the end of the test.
func (b *bench) store() store.Store {
	b.t.Helper()
	st, err := storeurl.Open(context.Background(), b.url)
	if err != nil {
		b.t.Fatalf("open store: %v", err)
	}
	b.t.Cleanup(func() { st.Close() })
	return st
}

// applier applies events and failures to the store as a node would, on a
// session of its own.
type applier struct {
	t     *testing.T
	st    store.Store
	lease store.Lease
	pos   store.Position
}

func (b *bench) applier(sourceName string) *applier {
	b.t.Helper()
	b.ok("source", "add", sourceName, "--kind", "buffer", "--partitions", "1")
	st := b.store()
	ctx := context.Background()
	n := store.NodeRow{ID: "test-node", Name: "tester", Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
	if err := st.Join(ctx, n); err != nil {
		b.t.Fatalf("join: %v", err)
	}
	l, err := st.Claim(ctx, store.SessionID{Source: sourceName}, n.ID, "", time.Minute)
	if err != nil {
		b.t.Fatalf("claim: %v", err)
	}
	return &applier{t: b.t, st: st, lease: l, pos: l.Checkpoint}
}

// apply commits events and failures in one batch.
func (ap *applier) apply(events []event.Event, failures ...store.Failure) {
	ap.t.Helper()
	next := store.Position{Minor: ap.pos.Minor + int64(len(events)+len(failures))}
	for i := range failures {
		failures[i].SessionID = ap.lease.SessionID
		failures[i].Position = store.Position{Minor: ap.pos.Minor + int64(len(events)+i+1)}
	}
	err := ap.st.Apply(context.Background(), store.Batch{
		Lease: ap.lease, Node: "test-node", From: ap.pos, Checkpoint: next,
		Deltas: event.Coalesce(events), Applied: len(events), Failures: failures,
	})
	if err != nil {
		ap.t.Fatalf("apply: %v", err)
	}
	ap.pos = next
}

// mustDecode is event.Decode for test input known to be good.
func mustDecode(t *testing.T, raw string) event.Event {
	t.Helper()
	ev, err := event.Decode([]byte(raw), time.Now(), 0)
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return ev
}
