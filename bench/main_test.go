package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
)

// binDir holds the bam binary, built on first use by a process benchmark.
var (
	binDir    string
	buildOnce sync.Once
	bamPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bamBinary builds cmd/bam once per run, without -race: the process
// benchmarks time the product, not the race detector. BAM_BENCH_BAM names
// a binary to run instead (one built from another commit, for a before
// and after).
func bamBinary(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("BAM_BENCH_BAM"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bam-bench-")
		if buildErr != nil {
			return
		}
		bamPath = filepath.Join(binDir, "bam")
		out, err := exec.Command("go", "build", "-o", bamPath, "github.com/bam-dev/bam/cmd/bam").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build bam: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return bamPath
}

// pgURL returns a fresh PostgreSQL database for the benchmark, or skips it
// when the server cannot be reached (also under CI=true: a benchmark is not
// a test).
func pgURL(b *testing.B) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, testpg.AdminURL())
	if err != nil {
		b.Skipf("SKIPPED: PostgreSQL is unreachable (set BAM_TEST_PG to point at a server): %v", err)
	}
	_ = c.Close(ctx)
	return testpg.NewDatabase(b)
}

// storeURL returns a fresh store of the named driver.
func storeURL(b *testing.B, driver string) string {
	b.Helper()
	switch driver {
	case "postgres":
		return pgURL(b)
	case "sqlite":
		return "sqlite:" + filepath.Join(b.TempDir(), "bam.db")
	}
	b.Fatalf("unknown driver %q", driver)
	return ""
}

// openStore opens (and migrates) a store; it is closed when b ends.
func openStore(b *testing.B, url string) store.Store {
	b.Helper()
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return st
}

// benchEvent is one generated event with the key columns a baseline
// stores beside its payload.
type benchEvent struct {
	Instance  string
	Partition int
	Payload   []byte
}

// purchaseOrders returns n events over the given number of PurchaseOrder
// instances, as applications write them: every instance begins, is
// updated, and ends, and instances progress side by side (event i belongs
// to instance i mod instances), so a batch touches as many instances as it
// holds events, the worst case for the set-based upsert. Each payload is
// 150-250 bytes of JSON with 2-3 data items.
func purchaseOrders(n, instances, partitions int) []benchEvent {
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	rounds := (n + instances - 1) / instances
	customers := []string{"Contoso Ltd", "Fabrikam Inc", "Northwind Traders", "Adventure Works", "Tailspin Toys"}
	out := make([]benchEvent, n)
	for i := range out {
		round, j := i/instances, i%instances
		id := fmt.Sprintf("PO-%07d", 1000000+j)
		at := base.Add(time.Duration(i) * 37 * time.Millisecond)
		ev := event.Event{Activity: "PurchaseOrder", Instance: id, Time: at}
		switch {
		case round == 0:
			ev.Kind = event.Begin
			ev.Data = map[string]json.RawMessage{
				"Customer": jsonString(customers[j%len(customers)]),
				"Amount":   json.RawMessage(fmt.Sprintf("%d.%02d", 100+j%9000, j%100)),
				"Currency": jsonString("EUR"),
			}
		case round == rounds-1:
			ev.Kind = event.End
			ev.Data = map[string]json.RawMessage{
				"Shipped": jsonString(at.Format(time.RFC3339)),
				"Invoice": jsonString(fmt.Sprintf("INV-%08d", i)),
			}
		default:
			ev.Kind = event.Update
			ev.Data = map[string]json.RawMessage{
				"Status":   jsonString([]string{"Submitted", "Approved", "Ordered", "Received"}[round%4]),
				"Approver": jsonString(fmt.Sprintf("user%03d@contoso.com", (i*7)%500)),
				"Step":     json.RawMessage(fmt.Sprint(round)),
			}
		}
		out[i] = benchEvent{Instance: id, Partition: event.Partition(id, partitions), Payload: event.Encode(ev)}
	}
	return out
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func meanPayload(evs []benchEvent) float64 {
	total := 0
	for _, e := range evs {
		total += len(e.Payload)
	}
	return float64(total) / float64(len(evs))
}

// median and maximum of durations, in milliseconds.
func medianMax(ds []time.Duration) (med, max float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return ms(m), ms(s[len(s)-1])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// repsOr is BAM_BENCH_REPS, or def when it is not set. The heavier
// scenarios (a 100,000-event drain, 50 in-process nodes, a node under full
// load) run once by default.
func repsOr(def int) int {
	if n, err := strconv.Atoi(os.Getenv("BAM_BENCH_REPS")); err == nil && n > 0 {
		return n
	}
	return def
}

// spreads collects one value per repetition for each metric, and reports
// each metric's median and, with more than one repetition, its minimum and
// maximum as name_min and name_max.
type spreads struct {
	vals map[string][]float64
}

// add records v for the metric name and returns it.
func (s *spreads) add(name string, v float64) float64 {
	if s.vals == nil {
		s.vals = map[string][]float64{}
	}
	s.vals[name] = append(s.vals[name], v)
	return v
}

func (s *spreads) report(b *testing.B) {
	b.Helper()
	for name, xs := range s.vals {
		b.ReportMetric(median(xs), name)
		if len(xs) > 1 {
			b.ReportMetric(slices.Min(xs), name+"_min")
			b.ReportMetric(slices.Max(xs), name+"_max")
		}
	}
}

// median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
