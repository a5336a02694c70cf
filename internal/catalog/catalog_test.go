package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// fakeSource is an in-memory store of definitions that counts its calls.
type fakeSource struct {
	mu       sync.Mutex
	version  int64
	acts     []store.DeployedActivity
	versions int // DefinitionsVersion calls
	loads    int // Definitions calls
	failNext error
	block    chan struct{} // when set, DefinitionsVersion waits on it
}

func (f *fakeSource) Definitions(context.Context) ([]store.DeployedActivity, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	return append([]store.DeployedActivity(nil), f.acts...), f.version, nil
}

func (f *fakeSource) DefinitionsVersion(context.Context) (int64, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	if err := f.failNext; err != nil {
		f.failNext = nil
		return 0, err
	}
	return f.version, nil
}

func (f *fakeSource) deploy(t *testing.T, yaml string) {
	t.Helper()
	file, err := definition.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.version++
	f.acts = nil
	for _, a := range file.Activities {
		f.acts = append(f.acts, store.DeployedActivity{Activity: a, Version: f.version})
	}
	f.mu.Unlock()
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newCatalog(src Source, opts Options) (*Catalog, *clock) {
	c := New(src, opts)
	clk := &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	c.now = clk.now
	return c, clk
}

const po = `
activities:
  - name: PurchaseOrder
    items:
      - {name: Amount, type: integer}
`

func ev(activity string, data string) event.Event {
	e := event.Event{Activity: activity, Instance: "1", Kind: event.Update, Time: time.Now()}
	if data != "" {
		if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
			panic(err)
		}
	}
	return e
}

func fieldOf(err error) string {
	var e *event.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return "<not an *event.Error: " + err.Error() + ">"
}

func TestValidateChecksTheDeployedDefinition(t *testing.T) {
	src := &fakeSource{}
	src.deploy(t, po)
	c, _ := newCatalog(src, Options{})
	ctx := context.Background()
	if err := c.Validate(ctx, ev("PurchaseOrder", `{"Amount": 12}`)); err != nil {
		t.Fatalf("a valid event: %v", err)
	}
	err := c.Validate(ctx, ev("PurchaseOrder", `{"Amount": "twelve"}`))
	if fieldOf(err) != "data.Amount" {
		t.Errorf("a text in an integer item: %v, want an error on data.Amount", err)
	}
	err = c.Validate(ctx, ev("purchaseorder", `{"Amount": 12}`))
	if fieldOf(err) != "activity" || !strings.Contains(err.Error(), "did you mean PurchaseOrder") {
		t.Errorf("the activity in another case: %v, want a hint at PurchaseOrder", err)
	}
	if err := c.Validate(ctx, ev("Invoice", `{"Anything": 1}`)); err != nil {
		t.Errorf("an undeployed activity is accepted untyped by default, got %v", err)
	}
	strict, _ := newCatalog(src, Options{Strict: true})
	err = strict.Validate(ctx, ev("Invoice", `{"Anything": 1}`))
	if fieldOf(err) != "activity" || !strings.Contains(err.Error(), "not deployed") {
		t.Errorf("Strict, an undeployed activity: %v, want it refused", err)
	}
}

func TestRefreshAsksForTheVersionAtMostEveryMaxAge(t *testing.T) {
	src := &fakeSource{}
	src.deploy(t, po)
	c, clk := newCatalog(src, Options{MaxAge: time.Second})
	ctx := context.Background()
	for range 100 {
		if err := c.Validate(ctx, ev("PurchaseOrder", `{"Amount": 1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if src.versions != 1 || src.loads != 1 {
		t.Fatalf("100 valid events within MaxAge: %d version queries, %d loads, want 1 and 1", src.versions, src.loads)
	}
	clk.advance(time.Second)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if src.versions != 2 || src.loads != 1 {
		t.Errorf("after MaxAge, same version: %d version queries, %d loads, want 2 and 1", src.versions, src.loads)
	}
}

func TestAFailedCheckRefreshesBeforeRefusing(t *testing.T) {
	src := &fakeSource{}
	src.deploy(t, po)
	c, clk := newCatalog(src, Options{MaxAge: time.Hour, MinRecheck: 250 * time.Millisecond})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// A deployment adds an item; the copy is within MaxAge and does not
	// know it, but the event that uses it must pass.
	src.deploy(t, po+"      - {name: Rush, type: boolean}\n")
	if err := c.Validate(ctx, ev("PurchaseOrder", `{"Rush": true}`)); err != nil {
		t.Fatalf("an event valid under the new deployment: %v", err)
	}
	if c.Version() != 2 {
		t.Errorf("version %d after the forced refresh, want 2", c.Version())
	}
	// A stream of bad events forces at most one refresh per MinRecheck.
	clk.advance(250 * time.Millisecond)
	before := src.versions
	for range 50 {
		if err := c.Validate(ctx, ev("PurchaseOrder", `{"Nope": 1}`)); fieldOf(err) != "data.Nope" {
			t.Fatalf("bad event: %v", err)
		}
	}
	if got := src.versions - before; got != 1 {
		t.Errorf("50 bad events within MinRecheck: %d version queries, want 1", got)
	}
	clk.advance(250 * time.Millisecond)
	_ = c.Validate(ctx, ev("PurchaseOrder", `{"Nope": 1}`))
	if got := src.versions - before; got != 2 {
		t.Errorf("after MinRecheck: %d version queries, want 2", got)
	}
}

func TestAStoreErrorIsNotTheEventsFault(t *testing.T) {
	src := &fakeSource{failNext: errors.New("connection refused")}
	c, _ := newCatalog(src, Options{})
	err := c.Validate(context.Background(), ev("PurchaseOrder", `{"Amount": 1}`))
	var e *event.Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("store down: %v, want a plain error (retry), not an *event.Error (quarantine)", err)
	}
	if err := c.Validate(context.Background(), ev("PurchaseOrder", `{"Amount": 1}`)); err != nil {
		t.Errorf("store back: %v", err)
	}
}

// TestARefreshInProgressHoldsNobodyUp: when the copy gets old, one caller
// asks the store; the others go on with the copy in hand instead of queuing
// behind it (a node's sessions would each hold a batch meanwhile).
func TestARefreshInProgressHoldsNobodyUp(t *testing.T) {
	src := &fakeSource{}
	src.deploy(t, po)
	c, clk := newCatalog(src, Options{MaxAge: time.Second})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	release := make(chan struct{})
	src.mu.Lock()
	src.block = release
	src.mu.Unlock()
	asking := make(chan error, 1)
	go func() { asking <- c.Validate(ctx, ev("PurchaseOrder", `{"Amount": 1}`)) }()
	testwait.Until(t, 10*time.Second, "the first caller to hold the refresh", func() bool {
		if c.refreshing.TryLock() {
			c.refreshing.Unlock()
			return false
		}
		return true
	})
	done := make(chan error, 1)
	go func() { done <- c.Validate(ctx, ev("PurchaseOrder", `{"Amount": 2}`)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Validate waited for another caller's refresh")
	}
	close(release)
	if err := <-asking; err != nil {
		t.Fatal(err)
	}
}

// SetStrict turns the refusal of undeployed activities on and off for the
// checks that follow (the pool-wide require-definitions, changed live).
func TestSetStrictAppliesToTheNextChecks(t *testing.T) {
	src := &fakeSource{}
	src.deploy(t, po)
	c, _ := newCatalog(src, Options{})
	ctx := context.Background()
	c.SetStrict(true)
	err := c.Validate(ctx, ev("Invoice", `{"Anything": 1}`))
	if fieldOf(err) != "activity" || !strings.Contains(err.Error(), "turn require-definitions off") {
		t.Fatalf("after SetStrict(true), an undeployed activity: %v, want it refused", err)
	}
	c.SetStrict(false)
	if err := c.Validate(ctx, ev("Invoice", `{"Anything": 1}`)); err != nil {
		t.Fatalf("after SetStrict(false), an undeployed activity: %v, want it accepted", err)
	}
}
