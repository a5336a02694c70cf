package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// The memory workload: one node, 64 sessions.
const (
	memSources    = 4
	memPartitions = 16
	memSample     = 100 * time.Millisecond // how often VmRSS is read
	memIdle       = 2 * time.Second        // each idle baseline
	memWarmup     = 5 * time.Second        // at most, for the backlog to build up
	memMeasure    = 10 * time.Second
	// memBacklog is the backlog the writers keep: they append while fewer
	// events than this wait, so the node always has full batches to read.
	memBacklog     = 100_000
	memWriterCount = 2
	// memOutage is the backlog of the second phase, as after an outage:
	// 18,750 events a session, more than a batch grows to (16,000).
	memOutage = 1_200_000
)

// BenchmarkNodeMemory measures the resident memory of one real `bam serve`
// process (default settings) draining 4 buffer sources of 16 partitions:
// 64 sessions, all on the one node. Writers in the benchmark process append
// purchase-order events (BenchmarkDrain's, appendChunk per transaction)
// whenever fewer than memBacklog wait, so every session always finds a
// full batch: the node runs at full throughput. Over memMeasure of that
// steady draining, the process's VmRSS is read from /proc/<pid>/status
// every 100 ms; reported are its peak and median, VmHWM at the end (the
// high-water mark since exec, which the kernel updates lazily, so it can
// read a little under the peak sampled), and the events/s drained
// meanwhile (from the sessions' applied counts). The writers share the
// machine (and, on SQLite, the file's write lock) with the node, so this
// is the steady rate in and out, not BenchmarkDrain's drain of a
// pre-filled buffer.
//
// A second phase measures the node as after an outage: the sources are
// disabled while memOutage events pile up, then enabled, so every session
// starts with a backlog larger than its largest batch (--max-batch-size);
// reported as outage_*.
//
// The baselines, same process, same run: its VmRSS idle right after it
// joined the pool with no source (0 sessions), and idle with the 64
// sessions claimed before any event is written (median of memIdle each).
//
// BAM_BENCH_REPS repeats the scenario with a new process (default once);
// with more than one repetition, each figure is the median, beside its
// _min and _max.
func BenchmarkNodeMemory(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchNodeMemory(b, driver) })
	}
}

func benchNodeMemory(b *testing.B, driver string) {
	b.StopTimer()
	chunks := memChunks()
	var m spreads
	reps := 0
	for range b.N {
		for range repsOr(1) {
			reps++
			u := storeURL(b, driver) // skips first when PostgreSQL is unreachable
			c := &cluster{b: b, driver: driver, bin: bamBinary(b), url: u}
			c.bam("migrate")
			st := openStore(b, u)
			n := c.start()
			n.waitJoined(b)
			pid := n.Pid()

			idle0 := m.add("idle_rss_MB", median(sampleRSS(b, pid, memIdle)))
			for i := range memSources {
				src := store.Source{Name: memSourceName(i), Kind: store.KindBuffer, Partitions: memPartitions, Enabled: true}
				if err := st.AddSource(context.Background(), src); err != nil {
					b.Fatal(err)
				}
			}
			waitOwned(b, st, n.id, memSources*memPartitions)
			idle64 := m.add("idle64_rss_MB", median(sampleRSS(b, pid, memIdle)))

			w := startMemWriters(b, st, chunks, memBacklog)
			warm := time.Now()
			for w.backlog() < memBacklog/2 && time.Since(warm) < memWarmup {
				time.Sleep(memPoll)
			}
			w.measuring.Store(true)
			applied0 := appliedOf(b, st)
			t0 := time.Now()
			rss := sampleRSS(b, pid, memMeasure)
			took := time.Since(t0)
			applied1 := appliedOf(b, st)
			status := procStatus(b, pid)
			w.stop()

			peak := m.add("peak_rss_MB", slices.Max(rss))
			med := m.add("median_rss_MB", median(rss))
			hwm := m.add("hwm_MB", status["VmHWM"])
			rate := m.add("drained_events/s", float64(applied1-applied0)/took.Seconds())
			m.add("backlog_min_events", float64(w.minBacklog.Load()))
			m.add("peak/idle", peak/idle0)
			b.Logf("%s: RSS idle %.1f MB (0 sessions), %.1f MB (64 idle sessions); draining: peak %.1f MB, median %.1f MB, VmHWM %.1f MB, %.0f events/s drained, backlog ≥ %d events while measured",
				driver, idle0, idle64, peak, med, hwm, rate, w.minBacklog.Load())

			// Phase 2, after an outage: the sources are disabled while
			// memOutage events pile up, then enabled: every session starts
			// with a backlog larger than its largest batch.
			setEnabled(b, st, false)
			w = startMemWriters(b, st, chunks, memOutage)
			fill := time.Now()
			for w.backlog() < memOutage && time.Since(fill) < 2*time.Minute {
				time.Sleep(memPoll)
			}
			w.stop()
			backlog := w.backlog()
			setEnabled(b, st, true)
			applied0 = appliedOf(b, st)
			t0 = time.Now()
			rss = sampleRSS(b, pid, memMeasure)
			took = time.Since(t0)
			applied1 = appliedOf(b, st)
			opeak := m.add("outage_peak_rss_MB", slices.Max(rss))
			omed := m.add("outage_median_rss_MB", median(rss))
			orate := m.add("outage_drained_events/s", float64(applied1-applied0)/took.Seconds())
			m.add("outage_backlog_events", float64(backlog))
			b.Logf("%s: after an outage, %d events waiting: peak %.1f MB, median %.1f MB, %.0f events/s drained",
				driver, backlog, opeak, omed, orate)

			n.signal(b, syscall.SIGTERM)
			n.wait(b, 30*time.Second)
			ss, err := st.Sessions(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range ss {
				if s.Failed != 0 {
					b.Fatalf("session %s/%d quarantined %d events", s.Source, s.Partition, s.Failed)
				}
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(reps), "reps")
	m.report(b)
}

func memSourceName(i int) string { return fmt.Sprintf("mem%d", i) }

// setEnabled enables or disables every source of the memory workload.
func setEnabled(b *testing.B, st store.Store, enabled bool) {
	for i := range memSources {
		if err := st.SetSourceEnabled(context.Background(), memSourceName(i), enabled); err != nil {
			b.Fatal(err)
		}
	}
}

// memChunks is BenchmarkDrain's event set over 16 partitions, as
// AppendBuffer chunks of appendChunk events, written again and again.
func memChunks() [][]store.BufferEvent {
	evs := purchaseOrders(drainEvents, drainInstances, memPartitions)
	var out [][]store.BufferEvent
	for i := 0; i < len(evs); i += appendChunk {
		chunk := evs[i:min(i+appendChunk, len(evs))]
		bes := make([]store.BufferEvent, len(chunk))
		for j, e := range chunk {
			bes[j] = store.BufferEvent{Partition: e.Partition, Payload: e.Payload}
		}
		out = append(out, bes)
	}
	return out
}

// memWriters append chunks, each to the next source, while fewer than
// limit events wait to be applied. The sessions' applied counts are
// read every memPoll, by one goroutine, for all writers.
type memWriters struct {
	limit      int64 // the backlog the writers keep
	written    atomic.Int64
	applied    atomic.Int64
	measuring  atomic.Bool
	minBacklog atomic.Int64 // the least backlog seen while measuring
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

const memPoll = 50 * time.Millisecond

func startMemWriters(b *testing.B, st store.Store, chunks [][]store.BufferEvent, limit int64) *memWriters {
	ctx, cancel := context.WithCancel(context.Background())
	w := &memWriters{cancel: cancel, limit: limit}
	w.minBacklog.Store(limit)
	w.applied.Store(appliedOf(b, st))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			time.Sleep(memPoll)
			w.applied.Store(appliedOf(b, st))
			if bl := w.backlog(); w.measuring.Load() && bl < w.minBacklog.Load() {
				w.minBacklog.Store(bl)
			}
		}
	}()
	var next atomic.Int64
	for range memWriterCount {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				if w.backlog() >= w.limit {
					time.Sleep(memPoll / 5)
					continue
				}
				i := int(next.Add(1))
				chunk := chunks[i%len(chunks)]
				if err := st.AppendBuffer(ctx, memSourceName(i%memSources), chunk); err != nil {
					if ctx.Err() == nil {
						b.Errorf("writer: %v", err)
					}
					return
				}
				w.written.Add(int64(len(chunk)))
			}
		}()
	}
	b.Cleanup(w.stop)
	return w
}

func (w *memWriters) stop() {
	w.cancel()
	w.wg.Wait()
}

// backlog is the events written and not yet applied, as of the last read.
func (w *memWriters) backlog() int64 { return w.written.Load() - w.applied.Load() }

func appliedOf(b *testing.B, st store.Store) int64 {
	ss, err := st.Sessions(context.Background())
	if err != nil {
		b.Error(err)
		return 0
	}
	var n int64
	for _, s := range ss {
		n += s.Applied
	}
	return n
}

// waitOwned waits until the node holds n sessions under live leases.
func waitOwned(b *testing.B, st store.Store, node string, n int) {
	b.Helper()
	ss, _ := pollSessions(b, st, 20*time.Millisecond, 30*time.Second, func(ss []store.SessionRow) bool {
		return held(ss, []string{node})[node] == n
	})
	if ss == nil {
		b.Fatalf("node %s did not claim its %d sessions in 30s", node, n)
	}
}

// sampleRSS reads the process's VmRSS every memSample for d, in MB.
func sampleRSS(b *testing.B, pid int, d time.Duration) []float64 {
	b.Helper()
	var out []float64
	tick := time.NewTicker(memSample)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		out = append(out, procStatus(b, pid)["VmRSS"])
	}
	return out
}

// procStatus returns the memory lines (Vm*, Rss*) of /proc/<pid>/status,
// in MB.
func procStatus(b *testing.B, pid int) map[string]float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read the node's memory: %v", err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !(strings.HasPrefix(k, "Vm") || strings.HasPrefix(k, "Rss")) {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err == nil {
			out[k] = kb / 1024
		}
	}
	return out
}
