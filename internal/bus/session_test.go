package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testwait"
)

// memReader is an in-memory source partition whose reads can be made to fail.
type memReader struct {
	mu      sync.Mutex
	recs    []store.Record
	failing error
	trims   []store.Position
	limits  []int // of each read
}

var _ source.Reader = (*memReader)(nil)

func (m *memReader) add(payload string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := store.Position{Minor: int64(len(m.recs) + 1)}
	m.recs = append(m.recs, store.Record{Position: pos, Payload: []byte(payload), WrittenAt: time.Now()})
}

func (m *memReader) Read(_ context.Context, _ int, after store.Position, limit int) ([]store.Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limits = append(m.limits, limit)
	if m.failing != nil {
		return nil, false, m.failing
	}
	var out []store.Record
	for _, r := range m.recs {
		if after.Less(r.Position) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, false, nil
}

func (m *memReader) Trim(_ context.Context, _ int, upTo store.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trims = append(m.trims, upTo)
	return nil
}

func (m *memReader) Backlog(context.Context, int, store.Position) (int64, error) { return 0, nil }
func (m *memReader) Watch(context.Context, func()) error                         { return source.ErrNoWatch }
func (m *memReader) Close() error                                                { return nil }

type bundle struct {
	st    store.Store
	lease store.Lease
	src   *memReader
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSource(ctx, store.Source{Name: "s", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Join(ctx, store.NodeRow{ID: "n", Name: "n", StartedAt: time.Now(), State: store.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Claim(ctx, store.SessionID{Source: "s"}, "n", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{st: st, lease: l, src: &memReader{}}
}

// defaulted fills the settings a test leaves zero with the defaults, so
// that a test states only what it is about.
func defaulted(c Config) Config {
	d := DefaultConfig()
	c.BatchSize = cmp.Or(c.BatchSize, d.BatchSize)
	c.MaxBatchSize = cmp.Or(c.MaxBatchSize, d.MaxBatchSize)
	c.PollInterval = cmp.Or(c.PollInterval, d.PollInterval)
	c.HeldRetry = cmp.Or(c.HeldRetry, d.HeldRetry)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, d.MaxBackoff)
	c.MaxEventSize = cmp.Or(c.MaxEventSize, d.MaxEventSize)
	c.TrimEvery = cmp.Or(c.TrimEvery, d.TrimEvery)
	return c
}

func (b *bundle) session(cfg Config) *Session {
	return NewSession(defaulted(cfg), b.st, "n", lease.New(context.Background(), b.lease, time.Now().Add(time.Minute)),
		func(context.Context) (source.Reader, error) { return b.src, nil },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func (b *bundle) run(t *testing.T, s *Session) (stop func() error) {
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	return func() error {
		s.Stop()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("session did not stop")
			return nil
		}
	}
}

func (b *bundle) sessionRow(t *testing.T) store.SessionRow {
	ss, err := b.st.Sessions(context.Background())
	if err != nil || len(ss) != 1 {
		t.Fatalf("Sessions = %v, %v", ss, err)
	}
	return ss[0]
}

func ev(instance string, kind event.Kind) string {
	return fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":%q}`, instance, kind)
}

func TestPoisonEventsAreQuarantinedAndTheSessionGoesOn(t *testing.T) {
	b := setup(t)
	b.src.add(ev("1", event.Begin))
	b.src.add(`{"activity":"PO","instance":"1","kind":`) // malformed
	b.src.add(`{"activity":"PO","instance":"1","kind":"shipped"}`)
	b.src.add(`{"activity":"PO","instance":"1","kind":"update","data":{"x":{"nested":1}}}`)
	b.src.add(`{"activity":"PO","kind":"update"}`)
	b.src.add(ev("1", event.End))
	stop := b.run(t, b.session(Config{BatchSize: 2, PollInterval: 10 * time.Millisecond}))
	testwait.Until(t, 10*time.Second, "every record to be covered", func() bool { return b.sessionRow(t).Checkpoint.Minor == 6 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v after Stop, want nil", err)
	}
	row := b.sessionRow(t)
	if row.Applied != 2 || row.Failed != 4 {
		t.Fatalf("applied %d, failed %d; want 2 and 4", row.Applied, row.Failed)
	}
	in, err := b.st.Instance(context.Background(), event.Key{Activity: "PO", Instance: "1"})
	if err != nil || in.State != store.StateCompleted || in.Events != 2 {
		t.Fatalf("instance = %+v, %v; want completed with 2 events", in, err)
	}
	failed, err := b.st.FailedEvents(context.Background(), "s", 0)
	if err != nil || len(failed) != 4 {
		t.Fatalf("failed events = %d, %v", len(failed), err)
	}
	for i, want := range []string{"malformed JSON", `kind: unknown kind "shipped"`, "data.x: value must be", "instance: missing"} {
		if !strings.Contains(failed[i].Reason, want) {
			t.Errorf("failed event %d reason %q, want it to contain %q", i, failed[i].Reason, want)
		}
		if failed[i].Position.Minor != int64(i+2) {
			t.Errorf("failed event %d at position %v, want minor %d", i, failed[i].Position, i+2)
		}
	}
}

func TestSourceErrorsAreRetriedAndShown(t *testing.T) {
	b := setup(t)
	b.src.failing = errors.New("connection refused")
	stop := b.run(t, b.session(Config{PollInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}))
	testwait.Until(t, 10*time.Second, "the error to show", func() bool { return strings.Contains(b.sessionRow(t).LastError, "connection refused") })
	b.src.mu.Lock()
	b.src.failing = nil
	b.src.mu.Unlock()
	b.src.add(ev("1", event.Begin))
	testwait.Until(t, 10*time.Second, "the event to be applied and the error cleared", func() bool {
		row := b.sessionRow(t)
		return row.Applied == 1 && row.LastError == ""
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestAFencedSessionEndsLost(t *testing.T) {
	b := setup(t)
	s := b.session(Config{PollInterval: 10 * time.Millisecond})
	// A peer takes the session over: our epoch is stale.
	ctx := context.Background()
	if _, err := b.st.ExpireLeases(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Claim(ctx, store.SessionID{Source: "s"}, "peer", "n", time.Minute); err != nil {
		t.Fatal(err)
	}
	b.src.add(ev("1", event.Begin))
	err := s.Run(ctx)
	if !errors.Is(err, ErrLost) {
		t.Fatalf("Run = %v, want ErrLost", err)
	}
	if _, err := b.st.Instance(ctx, event.Key{Activity: "PO", Instance: "1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a fenced session applied its batch (%v)", err)
	}
}

func TestAnUntrustedLeaseCommitsNothing(t *testing.T) {
	b := setup(t)
	s := NewSession(defaulted(Config{}), b.st, "n", lease.New(context.Background(), b.lease, time.Now().Add(-time.Millisecond)),
		func(context.Context) (source.Reader, error) { return b.src, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.src.add(ev("1", event.Begin))
	if err := s.Run(context.Background()); !errors.Is(err, ErrLost) {
		t.Fatalf("Run past the local deadline = %v, want ErrLost", err)
	}
	if row := b.sessionRow(t); row.Applied != 0 {
		t.Fatalf("applied %d events past the local deadline", row.Applied)
	}
}

func TestTrimsWhileDrainingAndWhenCaughtUp(t *testing.T) {
	b := setup(t)
	for i := 0; i < 25; i++ {
		b.src.add(ev(fmt.Sprint(i), event.Begin))
	}
	stop := b.run(t, b.session(Config{BatchSize: 2, MaxBatchSize: 2, TrimEvery: 5, PollInterval: 10 * time.Millisecond}))
	testwait.Until(t, 10*time.Second, "the last record to be trimmed", func() bool {
		b.src.mu.Lock()
		defer b.src.mu.Unlock()
		return len(b.src.trims) > 0 && b.src.trims[len(b.src.trims)-1].Minor == 25
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b.src.mu.Lock()
	defer b.src.mu.Unlock()
	// 12 full batches (trimmed every 5th) and one short one (trimmed at once).
	want := []int64{10, 20, 25}
	if len(b.src.trims) != len(want) {
		t.Fatalf("trims at %v, want at %v", b.src.trims, want)
	}
	for i, p := range b.src.trims {
		if p.Minor != want[i] {
			t.Fatalf("trims at %v, want at %v", b.src.trims, want)
		}
	}
}

func TestTheBatchGrowsWhileABacklogDrains(t *testing.T) {
	b := setup(t)
	for i := 0; i < 40; i++ {
		b.src.add(ev(fmt.Sprint(i), event.Update))
	}
	stop := b.run(t, b.session(Config{BatchSize: 2, MaxBatchSize: 8, PollInterval: 10 * time.Millisecond}))
	testwait.Until(t, 10*time.Second, "the backlog to be applied", func() bool { return b.sessionRow(t).Applied == 40 })
	testwait.Until(t, 10*time.Second, "a read after catching up", func() bool {
		b.src.mu.Lock()
		defer b.src.mu.Unlock()
		return len(b.src.limits) >= 8
	})
	b.src.add(ev("40", event.Update))
	testwait.Until(t, 10*time.Second, "the new event to be applied", func() bool { return b.sessionRow(t).Applied == 41 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b.src.mu.Lock()
	defer b.src.mu.Unlock()
	// Full batches of 8 from the start (40 records), then an empty read
	// (caught up): back to 2 for every read after it.
	want := []int{8, 8, 8, 8, 8, 8}
	for i, l := range b.src.limits {
		w := 2
		if i < len(want) {
			w = want[i]
		}
		if l != w {
			t.Fatalf("reads asked for %v records; want %v, then 2 each", b.src.limits, want)
		}
	}
}

func TestBatchWaitLetsAPartialBatchFill(t *testing.T) {
	b := setup(t)
	b.src.add(ev("1", event.Begin))
	stop := b.run(t, b.session(Config{BatchSize: 10, BatchWait: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond}))
	// Once the session has read the first event, it waits for the batch
	// to fill; the other two come meanwhile.
	testwait.Until(t, 10*time.Second, "the session to read the first event", func() bool {
		b.src.mu.Lock()
		defer b.src.mu.Unlock()
		return len(b.src.limits) >= 1
	})
	b.src.add(ev("2", event.Begin))
	b.src.add(ev("3", event.Begin))
	testwait.Until(t, 10*time.Second, "the three events to be applied", func() bool { return b.sessionRow(t).Applied == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// One batch covered all three: one commit, so the checkpoint jumped
	// from 0 to 3 and no batch ended at 1.
	b.src.mu.Lock()
	defer b.src.mu.Unlock()
	for _, p := range b.src.trims {
		if p.Minor == 1 {
			t.Fatalf("a batch ended at the first event: trims %v", b.src.trims)
		}
	}
}

// heldReader always has records held behind an open transaction.
type heldReader struct {
	memReader
	mu    sync.Mutex
	reads []time.Time
}

func (h *heldReader) Read(context.Context, int, store.Position, int) ([]store.Record, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads = append(h.reads, time.Now())
	return nil, true, nil
}

func TestHeldRecordsAreRetriedWithBackoff(t *testing.T) {
	b := setup(t)
	h := &heldReader{}
	s := NewSession(defaulted(Config{HeldRetry: 5 * time.Millisecond, PollInterval: 200 * time.Millisecond}), b.st, "n", lease.New(context.Background(), b.lease, time.Now().Add(time.Minute)),
		func(context.Context) (source.Reader, error) { return h, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stop := b.run(t, s)
	time.Sleep(time.Second) // the window whose reads are counted, on a real store's clock
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// 5, 10, 20, 40, 80, 160, then 200 ms: about 10 reads in a second, not 200.
	if len(h.reads) > 20 {
		t.Fatalf("%d reads in a second while records were held: the session spins", len(h.reads))
	}
	if len(h.reads) < 5 {
		t.Fatalf("only %d reads in a second: held records are not retried soon", len(h.reads))
	}
}

// validatorFunc adapts a function to Validator.
type validatorFunc func(ctx context.Context, ev event.Event) error

func (f validatorFunc) Validate(ctx context.Context, ev event.Event) error { return f(ctx, ev) }

func TestEventsRefusedByTheDefinitionsAreQuarantinedAndAStoreErrorIsRetried(t *testing.T) {
	b := setup(t)
	b.src.add(ev("1", event.Begin))
	b.src.add(`{"activity":"PO","instance":"1","kind":"update","data":{"Amount":"twelve"}}`)
	b.src.add(ev("1", event.End))
	var calls atomic.Int64
	v := validatorFunc(func(_ context.Context, e event.Event) error {
		if calls.Add(1) <= 2 {
			return errors.New("definitions unreachable") // the first batch fails, then is retried
		}
		if _, ok := e.Data["Amount"]; ok {
			return &event.Error{Field: "data.Amount", Reason: "must be an integer"}
		}
		return nil
	})
	stop := b.run(t, b.session(Config{BatchSize: 10, PollInterval: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Validator: v}))
	testwait.Until(t, 10*time.Second, "every record to be covered", func() bool { return b.sessionRow(t).Checkpoint.Minor == 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v after Stop, want nil", err)
	}
	row := b.sessionRow(t)
	if row.Applied != 2 || row.Failed != 1 {
		t.Fatalf("applied %d, failed %d; want 2 and 1", row.Applied, row.Failed)
	}
	failed, err := b.st.FailedEvents(context.Background(), "s", 0)
	if err != nil || len(failed) != 1 || failed[0].Reason != "data.Amount: must be an integer" {
		t.Fatalf("failed events = %+v, %v; want the update, with the definition's reason", failed, err)
	}
	in, err := b.st.Instance(context.Background(), event.Key{Activity: "PO", Instance: "1"})
	if err != nil || in.State != store.StateCompleted || in.Events != 2 {
		t.Fatalf("instance = %+v, %v; want completed with the 2 valid events", in, err)
	}
}
