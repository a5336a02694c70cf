package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the baselines' SQLite, the driver the store uses

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// The drain workload: DESIGN.md's throughput figure is measured on it.
const (
	drainEvents     = 100_000
	drainInstances  = 10_000
	drainPartitions = 4
	drainSource     = "orders"
	appendChunk     = 5_000 // events per AppendBuffer while pre-filling
	baselineBatch   = 1_000 // rows per transaction of the batched baselines
	naivePostgres   = 5_000 // events of the one-upsert-per-transaction baseline
	naiveSQLite     = 2_000 // fewer: every SQLite commit is an fsync
)

// BenchmarkDrain pre-fills a buffer source with 100,000 events of 10,000
// PurchaseOrder instances over 4 partitions (outside the timer), then times
// one in-process node (pool defaults, the batch size varied) draining it
// until every event is applied. In the same run it measures the database's
// own limit on the same rows: on PostgreSQL a COPY into a plain (logged,
// unindexed) table, on SQLite a bare INSERT of 1,000 rows per transaction
// with the driver's pragmas; and, for scale, a set-based upsert of 1,000
// rows per transaction and a naive relay doing one upsert per transaction.
func BenchmarkDrain(b *testing.B) {
	evs := purchaseOrders(drainEvents, drainInstances, drainPartitions)
	for _, driver := range []string{"postgres", "sqlite"} {
		for _, batch := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("%s/batch=%d", driver, batch), func(b *testing.B) {
				benchDrain(b, driver, batch, evs)
			})
		}
	}
}

func benchDrain(b *testing.B, driver string, batchSize int, evs []benchEvent) {
	b.StopTimer() // only the drain itself runs on the clock
	var busDur, raw, upsert, naive time.Duration
	var busWAL, rawWAL float64 // PostgreSQL: bytes of WAL the server wrote meanwhile
	naiveN := naivePostgres
	if driver == "sqlite" {
		naiveN = naiveSQLite
	}
	for range b.N {
		u := storeURL(b, driver)
		st := openStore(b, u)
		prefill(b, st, evs)

		// The baseline right before the bus, on the same database (SQLite:
		// a file beside the store's), so both see the same machine.
		base := openBaseline(b, driver, u)
		lsn := base.walLSN(b)
		raw += base.bulk(b, evs)
		rawWAL += base.walSince(b, lsn)

		lsn = base.walLSN(b)
		busDur += drain(b, st, u, sessionConfig(batchSize), len(evs))
		busWAL += base.walSince(b, lsn)
		verifyDrained(b, st, evs)

		upsert += base.upsertBatched(b, evs)
		naive += base.upsertEach(b, evs[:naiveN])
		base.close()
	}
	n := float64(b.N)
	busRate := n * float64(len(evs)) / busDur.Seconds()
	rawRate := n * float64(len(evs)) / raw.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(meanPayload(evs), "B/event")
	b.ReportMetric(busRate, "bus_events/s")
	b.ReportMetric(rawRate, "baseline_rows/s")
	b.ReportMetric(busRate/rawRate, "bus/baseline")
	upsertRate := n * float64(len(evs)) / upsert.Seconds()
	b.ReportMetric(upsertRate, "upsert1000_rows/s")
	b.ReportMetric(busRate/upsertRate, "bus/upsert1000")
	b.ReportMetric(n*float64(naiveN)/naive.Seconds(), "naive_events/s")
	if driver == "postgres" {
		// Server-wide: anything else writing to the server meanwhile counts.
		b.ReportMetric(busWAL/(n*float64(len(evs))), "bus_WAL_B/event")
		b.ReportMetric(rawWAL/(n*float64(len(evs))), "baseline_WAL_B/row")
	}
	b.Logf("%s batch=%d: bus %.0f events/s, baseline (%s) %.0f rows/s, ratio %.2f (target ≥ 0.5)",
		driver, batchSize, busRate, map[string]string{"postgres": "COPY", "sqlite": "INSERT 1000/tx"}[driver], rawRate, busRate/rawRate)
}

// prefill writes the events into the buffer source, appendChunk per call.
func prefill(b *testing.B, st store.Store, evs []benchEvent) {
	b.Helper()
	ctx := context.Background()
	if err := st.AddSource(ctx, store.Source{Name: drainSource, Kind: store.KindBuffer, Partitions: drainPartitions, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(evs); i += appendChunk {
		chunk := evs[i:min(i+appendChunk, len(evs))]
		bes := make([]store.BufferEvent, len(chunk))
		for j, e := range chunk {
			bes[j] = store.BufferEvent{Partition: e.Partition, Payload: e.Payload}
		}
		if err := st.AppendBuffer(ctx, drainSource, bes); err != nil {
			b.Fatal(err)
		}
	}
}

// drain runs one node with the session settings sc until the sessions'
// applied counts add up to total, and returns how long that took from the
// node's start. A second store handle watches, as an operator's `bam
// status` would.
// sessionConfig is the sessions' default configuration with batches of n
// events.
func sessionConfig(n int) bus.Config {
	c := bus.DefaultConfig()
	c.BatchSize = n
	return c
}

func drain(b *testing.B, st store.Store, u string, sc bus.Config, total int) time.Duration {
	b.Helper()
	cfg := pool.DefaultConfig()
	cfg.Session = sc
	return drainNode(b, st, u, cfg, total, nil)
}

// drainNode is drain with the node's whole configuration; started, when
// set, is called with the node before it runs (off the clock).
func drainNode(b *testing.B, st store.Store, u string, cfg pool.Config, total int, started func(*pool.Node)) time.Duration {
	b.Helper()
	mon, err := storeurl.Open(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Close()
	cfg.Name = "drain"
	node, err := pool.NewNode(st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if started != nil {
		started(node)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)

	b.StartTimer()
	start := time.Now()
	go func() { done <- node.Run(ctx) }()
	deadline := start.Add(5 * time.Minute)
	var took time.Duration
	for {
		ss, err := mon.Sessions(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var applied int64
		for _, s := range ss {
			applied += s.Applied
		}
		if applied >= int64(total) {
			took = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			var errs []string
			for _, s := range ss {
				if s.LastError != "" {
					errs = append(errs, fmt.Sprintf("%s/%d: %s", s.Source, s.Partition, s.LastError))
				}
			}
			b.Fatalf("drained %d of %d events in 5 minutes; the sessions' last errors: %v", applied, total, errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	stop()
	if err := <-done; err != nil {
		b.Fatalf("node: %v", err)
	}
	return took
}

// verifyDrained checks that every session's backlog is 0 and that every
// event was applied once to its instance.
func verifyDrained(b *testing.B, st store.Store, evs []benchEvent) {
	b.Helper()
	ctx := context.Background()
	ss, err := st.Sessions(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range ss {
		n, err := st.BufferBacklog(ctx, s.SessionID, s.Checkpoint)
		if err != nil {
			b.Fatal(err)
		}
		if n != 0 {
			b.Fatalf("session %v: backlog %d after the drain", s.SessionID, n)
		}
	}
	want := map[string]int64{}
	for _, e := range evs {
		want[e.Instance]++
	}
	ins, err := st.Instances(ctx, store.InstanceFilter{Activity: "PurchaseOrder"})
	if err != nil {
		b.Fatal(err)
	}
	if len(ins) != len(want) {
		b.Fatalf("%d instances after the drain, want %d", len(ins), len(want))
	}
	for _, in := range ins {
		if in.Events != want[in.ID] || in.State != store.StateCompleted {
			b.Fatalf("instance %s: %d events, state %s; want %d, completed", in.ID, in.Events, in.State, want[in.ID])
		}
	}
}

// baseline is what the database does with the same rows without bam.
type baseline struct {
	pg  *pgx.Conn // postgres
	db  *sql.DB   // sqlite
	ctx context.Context
}

func openBaseline(b *testing.B, driver, storeURL string) *baseline {
	b.Helper()
	ctx := context.Background()
	base := &baseline{ctx: ctx}
	var ddl []string
	if driver == "postgres" {
		c, err := pgx.Connect(ctx, storeURL)
		if err != nil {
			b.Fatal(err)
		}
		base.pg = c
		// Normal (logged) tables, like the store's.
		ddl = []string{
			`CREATE TABLE bench_copy (source text NOT NULL, partition integer NOT NULL,
				activity text NOT NULL, instance_id text NOT NULL, payload bytea NOT NULL)`,
			`CREATE TABLE bench_upsert (activity text NOT NULL, instance_id text NOT NULL,
				events bigint NOT NULL, payload bytea NOT NULL, PRIMARY KEY (activity, instance_id))`,
			`CREATE TABLE bench_naive (activity text NOT NULL, instance_id text NOT NULL,
				events bigint NOT NULL, payload bytea NOT NULL, PRIMARY KEY (activity, instance_id))`,
		}
		for _, q := range ddl {
			if _, err := c.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		return base
	}
	// The same pragmas as internal/store/sqlite: WAL, synchronous=FULL,
	// IMMEDIATE write transactions, on a file beside the store's.
	path := filepath.Join(filepath.Dir(storeURL[len("sqlite:"):]), "baseline.db")
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	base.db = db
	ddl = []string{
		`CREATE TABLE bench_insert (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, partition INTEGER NOT NULL,
			activity TEXT NOT NULL, instance_id TEXT NOT NULL, payload BLOB NOT NULL)`,
		`CREATE TABLE bench_upsert (activity TEXT NOT NULL, instance_id TEXT NOT NULL,
			events INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (activity, instance_id))`,
		`CREATE TABLE bench_naive (activity TEXT NOT NULL, instance_id TEXT NOT NULL,
			events INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (activity, instance_id))`,
	}
	for _, q := range ddl {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return base
}

// walLSN returns the server's current WAL position (PostgreSQL; "" on
// SQLite).
func (base *baseline) walLSN(b *testing.B) string {
	b.Helper()
	if base.pg == nil {
		return ""
	}
	var lsn string
	if err := base.pg.QueryRow(base.ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		b.Fatal(err)
	}
	return lsn
}

// walSince returns the bytes of WAL the server wrote since lsn (PostgreSQL;
// 0 on SQLite).
func (base *baseline) walSince(b *testing.B, lsn string) float64 {
	b.Helper()
	if base.pg == nil {
		return 0
	}
	var n float64
	if err := base.pg.QueryRow(base.ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8`, lsn).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func (base *baseline) close() {
	if base.pg != nil {
		_ = base.pg.Close(base.ctx)
	}
	if base.db != nil {
		_ = base.db.Close()
	}
}

// bulk is the raw write limit: PostgreSQL COPY of all rows in one
// statement; SQLite a prepared INSERT, 1,000 rows per transaction.
func (base *baseline) bulk(b *testing.B, evs []benchEvent) time.Duration {
	b.Helper()
	start := time.Now()
	if base.pg != nil {
		n, err := base.pg.CopyFrom(base.ctx, pgx.Identifier{"bench_copy"},
			[]string{"source", "partition", "activity", "instance_id", "payload"},
			pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
				e := evs[i]
				return []any{drainSource, int32(e.Partition), "PurchaseOrder", e.Instance, e.Payload}, nil
			}))
		if err != nil || n != int64(len(evs)) {
			b.Fatalf("COPY: %d rows, %v", n, err)
		}
		return time.Since(start)
	}
	base.sqliteBatches(b, evs, `INSERT INTO bench_insert (source, partition, activity, instance_id, payload) VALUES (?, ?, ?, ?, ?)`,
		func(e benchEvent) []any {
			return []any{drainSource, e.Partition, "PurchaseOrder", e.Instance, e.Payload}
		})
	return time.Since(start)
}

// upsertBatched upserts the rows by (activity, instance), 1,000 per
// transaction: PostgreSQL one set-based statement per transaction, SQLite
// one prepared statement per row.
func (base *baseline) upsertBatched(b *testing.B, evs []benchEvent) time.Duration {
	b.Helper()
	start := time.Now()
	if base.pg != nil {
		for i := 0; i < len(evs); i += baselineBatch {
			chunk := evs[i:min(i+baselineBatch, len(evs))]
			acts, ids, payloads := make([]string, len(chunk)), make([]string, len(chunk)), make([][]byte, len(chunk))
			for j, e := range chunk {
				acts[j], ids[j], payloads[j] = "PurchaseOrder", e.Instance, e.Payload
			}
			_, err := base.pg.Exec(base.ctx, `
				INSERT INTO bench_upsert AS t (activity, instance_id, events, payload)
				SELECT a, i, 1, p FROM unnest($1::text[], $2::text[], $3::bytea[]) AS d (a, i, p)
				ON CONFLICT (activity, instance_id) DO UPDATE SET events = t.events + 1, payload = EXCLUDED.payload`,
				acts, ids, payloads)
			if err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	base.sqliteBatches(b, evs, `
		INSERT INTO bench_upsert (activity, instance_id, events, payload) VALUES (?, ?, 1, ?)
		ON CONFLICT (activity, instance_id) DO UPDATE SET events = events + 1, payload = excluded.payload`,
		func(e benchEvent) []any { return []any{"PurchaseOrder", e.Instance, e.Payload} })
	return time.Since(start)
}

// upsertEach is the naive relay: one upsert per transaction.
func (base *baseline) upsertEach(b *testing.B, evs []benchEvent) time.Duration {
	b.Helper()
	start := time.Now()
	for _, e := range evs {
		var err error
		if base.pg != nil {
			_, err = base.pg.Exec(base.ctx, `
				INSERT INTO bench_naive AS t (activity, instance_id, events, payload) VALUES ($1, $2, 1, $3)
				ON CONFLICT (activity, instance_id) DO UPDATE SET events = t.events + 1, payload = EXCLUDED.payload`,
				"PurchaseOrder", e.Instance, e.Payload)
		} else {
			_, err = base.db.ExecContext(base.ctx, `
				INSERT INTO bench_naive (activity, instance_id, events, payload) VALUES (?, ?, 1, ?)
				ON CONFLICT (activity, instance_id) DO UPDATE SET events = events + 1, payload = excluded.payload`,
				"PurchaseOrder", e.Instance, e.Payload)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func (base *baseline) sqliteBatches(b *testing.B, evs []benchEvent, query string, args func(benchEvent) []any) {
	b.Helper()
	for i := 0; i < len(evs); i += baselineBatch {
		tx, err := base.db.BeginTx(base.ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.PrepareContext(base.ctx, query)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range evs[i:min(i+baselineBatch, len(evs))] {
			if _, err := stmt.ExecContext(base.ctx, args(e)...); err != nil {
				b.Fatal(err)
			}
		}
		_ = stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
