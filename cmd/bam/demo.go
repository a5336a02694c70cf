package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testproc"
)

// Deadlines of the demo's waits. Each is far above what the pool needs
// (DESIGN.md: failover ≤ 5 s, handoff ≤ 1 s), so that a slow machine passes
// and a broken pool still fails with a clear message.
const (
	demoClaimWait   = 15 * time.Second
	demoBalanceWait = 15 * time.Second
	demoFailover    = 15 * time.Second
	demoDrainWait   = 30 * time.Second
	demoStopWait    = 20 * time.Second
	demoPoll        = 50 * time.Millisecond
	demoActivity    = "PurchaseOrder"
)

func (a *app) demoCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch two nodes share sessions, lose one to kill -9, and lose no event",
		Long: `demo plays the seed scenario of bam with real processes, on an embedded SQLite
store in a fresh directory (--dir; --store is not used):

  1. two buffer sources, src1 and src2, are configured;
  2. node-1 (bam serve) starts alone and owns both sessions;
  3. purchase orders are written continuously;
  4. node-2 starts; node-1 hands one session over;
  5. node-1 is killed with SIGKILL; node-2 takes its session over;
  6. the writer stops; every event written is checked to be applied exactly once.

It takes a few seconds and leaves the store behind for you to explore; the
next demo in the same directory starts over (it clears only a previous
demo's store, never other files).`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			// SIGPIPE too: `bam demo | head` closes the pipe, and the demo
			// must stop its nodes rather than die on its next write.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
			defer stop()
			d := &demo{a: a, out: &syncWriter{w: a.stdout}, dir: dir}
			defer d.cleanUp()
			return d.run(ctx)
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "bam-demo", "the directory of the demo's store: missing, empty or a previous demo's")
	return cmd
}

// demo is one run of `bam demo`.
type demo struct {
	a   *app
	out *syncWriter
	dir string
	url string
	st  store.Store

	mu       sync.Mutex
	children []*child
}

func (d *demo) say(format string, args ...any) {
	d.out.writeString(fmt.Sprintf(format, args...) + "\n")
}

func (d *demo) run(ctx context.Context) error {
	cleared, err := prepareDemoDir(d.dir)
	if err != nil {
		return err
	}
	if cleared {
		d.say("bam demo: starting over: cleared the previous demo's store in %s", d.dir)
	}
	d.url = "sqlite:" + filepath.ToSlash(filepath.Join(d.dir, "bam.db"))
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the bam executable to start nodes with: %w", err)
	}
	d.say("bam demo: the seed scenario, with real bam serve processes, on the store %s\n", d.url)
	start := time.Now()

	// 1. The store and the sources.
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", d.dir, err)
	}
	d.st, err = storeurl.Open(ctx, d.url)
	if err != nil {
		return err
	}
	from, to, err := d.st.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate the demo store: %w", err)
	}
	d.say("[1/7] store %s migrated from version %d to %d", d.url, from, to)
	for _, name := range []string{"src1", "src2"} {
		if err := d.st.AddSource(ctx, store.Source{Name: name, Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
			return fmt.Errorf("add source %s: %w", name, err)
		}
	}
	d.say("[2/7] added two buffer sources, src1 and src2, 1 partition each: two sessions, src1/0 and src2/0")

	// 2. node-1 alone owns both sessions.
	d.say("[3/7] starting node-1: bam serve --store %s --name node-1", d.url)
	n1, err := d.startNode(exe, "node-1")
	if err != nil {
		return err
	}
	took, err := d.waitFor(ctx, "node-1 to own both sessions", demoClaimWait, func(ss []store.SessionRow, ids map[string]string) bool {
		return ids["node-1"] != "" && ownedBy(ss, ids["node-1"]) == 2
	})
	if err != nil {
		return err
	}
	d.say("      node-1 owns both sessions (%s after start)", formatDuration(took))

	// 3. Events written continuously.
	w := newDemoWriter(d.st)
	wctx, cancelWriter := context.WithCancel(context.Background())
	go w.run(wctx)
	defer func() {
		cancelWriter()
		<-w.done
	}()
	d.say("[4/7] writing purchase orders continuously (begin, update Amount, update Approved, end), alternately to src1 and src2")
	if err := d.pause(ctx, time.Second, w); err != nil {
		return err
	}

	// 4. node-2 joins; node-1 hands one session over.
	d.say("[5/7] starting node-2 (%d events written so far)", w.count())
	if _, err := d.startNode(exe, "node-2"); err != nil {
		return err
	}
	var ids map[string]string
	took, err = d.waitFor(ctx, "node-1 and node-2 to own one session each", demoBalanceWait, func(ss []store.SessionRow, got map[string]string) bool {
		ids = got
		return got["node-2"] != "" && ownedBy(ss, got["node-1"]) == 1 && ownedBy(ss, got["node-2"]) == 1
	})
	if err != nil {
		return err
	}
	d.say("      node-1 handed a session over: each node owns one (%s after node-2 started)", formatDuration(took))
	if err := d.printStatus(ctx); err != nil {
		return err
	}
	if err := d.pause(ctx, time.Second, w); err != nil {
		return err
	}

	// 5. kill -9 node-1; node-2 takes over.
	d.say("[6/7] kill -9 node-1 (pid %d) while events are being written", n1.proc.Pid())
	killed := time.Now()
	n1.expectExit()
	if err := n1.proc.Signal(os.Kill); err != nil {
		return fmt.Errorf("kill node-1: %w", err)
	}
	if _, err := d.waitFor(ctx, "node-2 to own both sessions after node-1 was killed", demoFailover, func(ss []store.SessionRow, _ map[string]string) bool {
		return ownedBy(ss, ids["node-2"]) == 2
	}); err != nil {
		return err
	}
	d.say("      node-2 owns both sessions %s after the kill", formatDuration(time.Since(killed)))
	if err := d.pause(ctx, 500*time.Millisecond, w); err != nil {
		return err
	}

	// 6. Stop writing, drain, check.
	cancelWriter()
	<-w.done
	if w.err != nil {
		return fmt.Errorf("the event writer failed: %w", w.err)
	}
	d.say("[7/7] writer stopped after %d events; waiting for the backlog to drain", w.count())
	if _, err := d.waitFor(ctx, "the backlog of both sessions to drain", demoDrainWait, func(ss []store.SessionRow, _ map[string]string) bool {
		for _, s := range ss {
			n, err := d.st.BufferBacklog(ctx, s.SessionID, s.Checkpoint)
			if err != nil || n > 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	verdict, err := w.check(ctx)
	if err != nil {
		return err
	}
	d.say("      %s", verdict.String())
	if err := d.printStatus(ctx); err != nil {
		return err
	}

	// 7. A clean stop.
	n2 := d.node("node-2")
	stopped := time.Now()
	n2.expectExit()
	switch err := n2.proc.Stop(demoStopWait); {
	case errors.Is(err, testproc.ErrStopTimedOut):
		return fmt.Errorf("node-2 did not stop within %s of SIGTERM", demoStopWait)
	case err != nil:
		return fmt.Errorf("node-2 did not stop cleanly: %v (see its log above)", err)
	}
	d.say("      node-2 stopped cleanly on SIGTERM in %s", formatDuration(time.Since(stopped)))
	if !verdict.ok() {
		return errors.New("events were lost or applied twice: see the verdict above")
	}

	q := shellQuote(d.url)
	d.say(`
Demo done in %s. The store is left in %s; explore it (bam is "go run ./cmd/bam" from a checkout):

  bam status --store %s
  bam instance list %s --store %s
  bam instance get %s %s --store %s
  bam serve --store %s --name my-node       # run a node yourself
  bam emit --store %s --source src1 --activity %s --instance PO-9999 --kind begin --data Amount=42`,
		formatDuration(time.Since(start)), d.dir, q, demoActivity, q, demoActivity, verdict.sample, q, q, q, demoActivity)
	return nil
}

// prepareDemoDir makes sure dir is missing or empty, clearing a previous
// demo's store (bam.db and the files beside it). It clears nothing else: a
// directory holding other files is refused.
func prepareDemoDir(dir string) (cleared bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("demo directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "bam.db") {
			return false, fmt.Errorf("demo directory %s holds %s, which a demo did not make: pick another with --dir", dir, e.Name())
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return false, fmt.Errorf("clear the previous demo in %s: %w", dir, err)
		}
	}
	return true, nil
}

// pause lets the demo run for a while, unless the writer fails.
func (d *demo) pause(ctx context.Context, dur time.Duration, w *demoWriter) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-w.done:
		return fmt.Errorf("the event writer failed: %w", w.err)
	}
}

// waitFor polls the sessions and nodes until cond holds, and returns how
// long it took. It fails at the deadline, when ctx ends, or when a node
// exits that should not have.
func (d *demo) waitFor(ctx context.Context, what string, limit time.Duration, cond func([]store.SessionRow, map[string]string) bool) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	var last []store.SessionRow
	var lastIDs map[string]string
	var lastErr error
	for {
		if c := d.exitedEarly(); c != nil {
			return 0, fmt.Errorf("waiting for %s: %s exited: %v (see its log above)", what, c.name, c.proc.Err())
		}
		ss, ids, err := d.look(ctx)
		if err == nil && cond(ss, ids) {
			return time.Since(start), nil
		}
		if err == nil {
			last, lastIDs = ss, ids
		}
		lastErr = err
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s did not happen within %s", what, limit)
			if lastErr != nil {
				msg += "; last error reading the store: " + lastErr.Error()
			}
			return 0, fmt.Errorf("%s; sessions: %s", msg, describeOwners(last, lastIDs))
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("interrupted while waiting for %s", what)
		case <-time.After(demoPoll):
		}
	}
}

// look reads the sessions and the ids of the demo's nodes by name.
func (d *demo) look(ctx context.Context) ([]store.SessionRow, map[string]string, error) {
	ss, err := d.st.Sessions(ctx)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := d.st.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	ids := map[string]string{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.children {
		if c.id == "" {
			for _, n := range nodes {
				if n.Name == c.name && n.PID == c.proc.Pid() {
					c.id = n.ID
				}
			}
		}
		ids[c.name] = c.id
	}
	return ss, ids, nil
}

// ownedBy counts the sessions a node owns under a live lease.
func ownedBy(ss []store.SessionRow, id string) int {
	if id == "" {
		return 0
	}
	n := 0
	for _, s := range ss {
		if s.Owner == id && s.LeaseRemaining > 0 {
			n++
		}
	}
	return n
}

func describeOwners(ss []store.SessionRow, ids map[string]string) string {
	names := map[string]string{}
	for name, id := range ids {
		if id != "" {
			names[id] = name
		}
	}
	var parts []string
	for _, s := range ss {
		owner := "free"
		if s.Owner != "" {
			owner = "owned by " + cmpOr(names[s.Owner], s.Owner)
			if s.LeaseRemaining <= 0 {
				owner += " (lease expired)"
			}
		}
		parts = append(parts, fmt.Sprintf("%s/%d %s", s.Source, s.Partition, owner))
	}
	if len(parts) == 0 {
		return "none read"
	}
	return strings.Join(parts, ", ")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (d *demo) printStatus(ctx context.Context) error {
	s, err := readStatus(ctx, d.st, 3*time.Second)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("\n")
	if err := s.print(&b); err != nil {
		return err
	}
	b.WriteString("\n")
	d.out.writeString(b.String())
	return nil
}

// child is a `bam serve` process the demo started.
type child struct {
	name string
	proc *testproc.Proc
	id   string // node id, once seen in the store

	mu       sync.Mutex
	expected bool // the demo killed or stopped it
}

func (c *child) expectExit() {
	c.mu.Lock()
	c.expected = true
	c.mu.Unlock()
}

// startNode starts a node whose log lines show in the demo's output, each
// after the node's name. It dies with the demo, however the demo ends, on
// SIGTERM: it releases its leases and leaves.
func (d *demo) startNode(exe, name string) (*child, error) {
	p, err := testproc.Start(testproc.Config{
		Path: exe, Name: name,
		Args:              []string{"serve", "--store", d.url, "--name", name, "--log-format", "text"},
		OnLine:            func(line []byte) { d.out.writeString(name + " | " + string(line) + "\n") },
		ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, err
	}
	c := &child{name: name, proc: p}
	d.mu.Lock()
	d.children = append(d.children, c)
	d.mu.Unlock()
	return c, nil
}

func (d *demo) node(name string) *child {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// exitedEarly returns a node that exited without being told to.
func (d *demo) exitedEarly() *child {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.children {
		c.mu.Lock()
		expected := c.expected
		c.mu.Unlock()
		if c.proc.Exited() && !expected {
			return c
		}
	}
	return nil
}

// cleanUp kills the nodes still running and closes the store.
func (d *demo) cleanUp() {
	d.mu.Lock()
	children := append([]*child(nil), d.children...)
	d.mu.Unlock()
	for _, c := range children {
		// A clean stop, so that an interrupted demo leaves no leases.
		_ = c.proc.Stop(demoStopWait)
	}
	if d.st != nil {
		d.st.Close()
	}
}

// syncWriter serializes writes from the demo and its nodes' logs.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) writeString(str string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.w, str)
}

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// demoWriter writes purchase orders to src1 and src2 and remembers how
// many events of each instance were committed.
type demoWriter struct {
	st   store.Store
	done chan struct{} // closed when run returns; err is then set
	err  error

	mu      sync.Mutex
	written map[string]int  // committed events per instance
	ended   map[string]bool // instances whose end was committed
	total   int

	open []*demoPO
	next int
}

type demoPO struct {
	id     string
	source string
	stage  int // the next event: 0 begin, 1 update Amount, 2 update Approved, 3 end
}

func newDemoWriter(st store.Store) *demoWriter {
	return &demoWriter{st: st, done: make(chan struct{}), written: map[string]int{}, ended: map[string]bool{}}
}

func (w *demoWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// run writes a round of events every 20ms until ctx ends or a write
// fails, then closes done. A round is never cut short: its writes use
// their own context, so that what was committed is known exactly.
func (w *demoWriter) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.round(); err != nil {
			w.err = err
			return
		}
	}
}

var demoCustomers = []string{"Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove"}

func (w *demoWriter) round() error {
	for range 3 {
		w.next++
		src := "src1"
		if w.next%2 == 0 {
			src = "src2"
		}
		w.open = append(w.open, &demoPO{id: fmt.Sprintf("PO-%06d", w.next), source: src})
	}
	bySource := map[string][]store.BufferEvent{}
	var moved []*demoPO
	now := time.Now().UTC()
	for _, po := range w.open {
		ev := event.Event{Activity: demoActivity, Instance: po.id, Time: now}
		n := w.next
		switch po.stage {
		case 0:
			ev.Kind = event.Begin
			ev.Data = map[string]json.RawMessage{"Customer": quoteJSON(demoCustomers[n%len(demoCustomers)])}
		case 1:
			ev.Kind = event.Update
			ev.Data = map[string]json.RawMessage{"Amount": []byte(fmt.Sprint(100 + n%900))}
		case 2:
			ev.Kind = event.Update
			ev.Data = map[string]json.RawMessage{"Approved": quoteJSON(now.Format(time.RFC3339))}
		default:
			ev.Kind = event.End
		}
		bySource[po.source] = append(bySource[po.source], store.BufferEvent{Partition: event.Partition(po.id, 1), Payload: event.Encode(ev)})
		moved = append(moved, po)
	}
	for _, src := range []string{"src1", "src2"} {
		evs := bySource[src]
		if len(evs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.st.AppendBuffer(ctx, src, evs)
		cancel()
		if err != nil {
			return fmt.Errorf("write %d events to %s: %w", len(evs), src, err)
		}
		w.mu.Lock()
		for _, po := range moved {
			if po.source != src {
				continue
			}
			w.written[po.id]++
			w.total++
			if po.stage == 3 {
				w.ended[po.id] = true
			}
			po.stage++
		}
		w.mu.Unlock()
	}
	open := w.open[:0]
	for _, po := range w.open {
		if po.stage < 4 {
			open = append(open, po)
		}
	}
	w.open = open
	return nil
}

func quoteJSON(s string) []byte {
	return []byte(fmt.Sprintf("%q", s)) // demo strings are plain ASCII
}

// demoVerdict compares what was written with what was applied.
type demoVerdict struct {
	events, instances int
	applied           int64
	lost, doubled     int64
	completed         int
	wrongState        int
	sample            string // an instance id to show
}

func (v demoVerdict) ok() bool { return v.lost == 0 && v.doubled == 0 && v.wrongState == 0 }

func (v demoVerdict) String() string {
	s := fmt.Sprintf("written %d events to %d instances; applied exactly once: %d (lost %d, doubled %d)",
		v.events, v.instances, v.applied, v.lost, v.doubled)
	s += fmt.Sprintf("; %d instances completed", v.completed)
	if v.wrongState > 0 {
		s += fmt.Sprintf(", %d NOT completed although their end was written", v.wrongState)
	}
	if v.ok() {
		return s + "  ✔"
	}
	return s + "  ✘"
}

// check reads every instance of the activity and compares its event count
// with what was written.
func (w *demoWriter) check(ctx context.Context) (demoVerdict, error) {
	list, err := w.st.Instances(ctx, store.InstanceFilter{Activity: demoActivity})
	if err != nil {
		return demoVerdict{}, fmt.Errorf("read the demo's instances: %w", err)
	}
	got := make(map[string]store.Instance, len(list))
	for _, in := range list {
		got[in.ID] = in
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	v := demoVerdict{events: w.total, instances: len(w.written)}
	ids := make([]string, 0, len(w.written))
	for id := range w.written {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		want := int64(w.written[id])
		in, ok := got[id]
		have := in.Events
		if !ok {
			have = 0
		}
		v.applied += min(have, want)
		if have < want {
			v.lost += want - have
		}
		if have > want {
			v.doubled += have - want
		}
		if w.ended[id] {
			if in.State == store.StateCompleted {
				v.completed++
			} else {
				v.wrongState++
			}
		}
		if v.sample == "" && in.State == store.StateCompleted {
			v.sample = id
		}
		delete(got, id)
	}
	for _, in := range got { // applied but never written
		v.doubled += in.Events
	}
	if v.sample == "" && len(ids) > 0 {
		v.sample = ids[0]
	}
	return v, nil
}
