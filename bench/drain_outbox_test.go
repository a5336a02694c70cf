package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

// outboxSource is the pg-outbox source of BenchmarkDrainOutbox.
const outboxSource = "orders-outbox"

// BenchmarkDrainOutbox is BenchmarkDrain with a pg-outbox source instead of
// the store's buffer: the same 100,000 events of 10,000 PurchaseOrder
// instances are written (outside the timer) into an outbox table installed
// by pgoutbox.Install in a PostgreSQL database of their own, the
// application's, in transactions of appendChunk rows; the store is
// PostgreSQL (another database of the same server) or SQLite. One
// in-process node (pool defaults, the batch size varied) drains the 4
// partitions until every event is applied, trimming the outbox as it goes.
// After the timer, every instance must hold exactly its events and the
// outbox must be empty.
//
// Beside it, in the same run: a COPY of the same rows into a plain table
// of the outbox's server (the raw write limit DESIGN.md's target is set
// against), and the naive relay, one upsert per transaction into the
// store's database. On SQLite also the bare INSERT of 1,000 rows per
// transaction, BenchmarkDrain's raw baseline for that store.
//
// BAM_BENCH_REPS repeats the whole scenario (default once); with more than
// one repetition, each figure is the median, beside its _min and _max.
func BenchmarkDrainOutbox(b *testing.B) {
	evs := purchaseOrders(drainEvents, drainInstances, drainPartitions)
	for _, driver := range []string{"postgres", "sqlite"} {
		for _, batch := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("%s/batch=%d", driver, batch), func(b *testing.B) {
				benchDrainOutbox(b, driver, batch, evs)
			})
		}
	}
}

func benchDrainOutbox(b *testing.B, driver string, batchSize int, evs []benchEvent) {
	b.StopTimer()
	naiveN := naivePostgres
	if driver == "sqlite" {
		naiveN = naiveSQLite
	}
	n := float64(len(evs))
	var m spreads
	reps := 0
	for range b.N {
		for range repsOr(1) {
			reps++
			outbox := pgURL(b) // the application's database; skips when PostgreSQL is unreachable
			u := storeURL(b, driver)
			st := openStore(b, u)
			ob := fillOutbox(b, st, outbox, evs)

			// The baselines right before the bus. dst is the store's
			// database (the naive relay's target; on SQLite a file beside
			// the store's); the COPY goes to the outbox's server.
			dst := openBaseline(b, driver, u)
			src := dst
			var insert float64
			if driver == "sqlite" {
				src = openBaseline(b, "postgres", outbox)
				insert = m.add("sqlite_insert_rows/s", n/dst.bulk(b, evs).Seconds())
			}
			cp := m.add("copy_rows/s", n/src.bulk(b, evs).Seconds())

			bus := m.add("bus_events/s", n/drain(b, st, u, sessionConfig(batchSize), len(evs)).Seconds())
			verifyDrained(b, st, evs)
			var left int64
			if err := ob.QueryRow(context.Background(), `SELECT count(*) FROM `+pgoutbox.DefaultTable).Scan(&left); err != nil {
				b.Fatal(err)
			}
			if left != 0 {
				b.Fatalf("%d rows left in the outbox after the drain; want every row trimmed", left)
			}

			naive := m.add("naive_events/s", float64(naiveN)/dst.upsertEach(b, evs[:naiveN]).Seconds())
			m.add("bus/copy", bus/cp)
			m.add("bus/naive", bus/naive)
			if driver == "sqlite" {
				m.add("bus/sqlite_insert", bus/insert)
				src.close()
			}
			dst.close()
			_ = ob.Close(context.Background())
			b.Logf("%s batch=%d: bus %.0f events/s, COPY %.0f rows/s (bus/COPY %.3f), naive relay %.0f events/s (bus/naive %.1f)",
				driver, batchSize, bus, cp, bus/cp, naive, bus/naive)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(meanPayload(evs), "B/event")
	b.ReportMetric(float64(reps), "reps")
	m.report(b)
}

// fillOutbox installs the outbox table in the database at outbox, writes
// the events into it, appendChunk rows per transaction (as COPY), and adds
// it to the store as a pg-outbox source of drainPartitions partitions. The
// returned connection to the outbox's database is the caller's to close.
func fillOutbox(b *testing.B, st store.Store, outbox string, evs []benchEvent) *pgx.Conn {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, outbox)
	if err != nil {
		b.Fatal(err)
	}
	if err := pgoutbox.Install(ctx, conn, ""); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(evs); i += appendChunk {
		chunk := evs[i:min(i+appendChunk, len(evs))]
		n, err := conn.CopyFrom(ctx, pgx.Identifier{pgoutbox.DefaultTable}, []string{"instance_id", "event"},
			pgx.CopyFromSlice(len(chunk), func(j int) ([]any, error) {
				return []any{chunk[j].Instance, string(chunk[j].Payload)}, nil
			}))
		if err != nil || n != int64(len(chunk)) {
			b.Fatalf("fill the outbox: %d rows, %v", n, err)
		}
	}
	err = st.AddSource(ctx, store.Source{Name: outboxSource, Kind: store.KindPgOutbox, Partitions: drainPartitions,
		Enabled: true, DSN: outbox, Table: pgoutbox.DefaultTable})
	if err != nil {
		b.Fatal(err)
	}
	return conn
}
