package pgstream_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
)

// A buffered stream into the buffer source "orders" of a PostgreSQL store.
// (This example needs the store; eventstream's tests run the same steps on
// both drivers.)
func Example() {
	ctx := context.Background()
	stream, err := eventstream.OpenBuffered(ctx, pgstream.New(), "postgres://bam@127.0.0.1:5432/bam", "orders", eventstream.BufferedOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := stream.BeginActivity(ctx, "PurchaseOrder", "PO-1042"); err != nil {
		log.Fatal(err)
	}
	if err := stream.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	if err := stream.Close(ctx); err != nil {
		log.Fatal(err)
	}
}

// With a PostgreSQL store, the events of a direct stream can join a pgx
// transaction on the store's database. (This example needs the store;
// eventstream's direct_test.go runs the same steps.)
func ExampleDirectTx() {
	ctx := context.Background()
	const storeURL = "postgres://bam@127.0.0.1:5432/bam"
	stream, err := eventstream.OpenDirect(ctx, pgstream.New(), storeURL, eventstream.DirectOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close(ctx)
	db, err := pgxpool.New(ctx, storeURL)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE purchase_orders SET status = 'approved' WHERE id = $1`, "PO-1042"); err != nil {
			return err
		}
		return pgstream.DirectTx(stream, tx).UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{"Approved": time.Now()})
	})
	if err != nil {
		log.Fatal(err)
	}
}

// An outbox writes events in the application's own PostgreSQL transaction:
// they are committed if and only if the business change is. (This example
// needs a PostgreSQL database with an outbox installed by
// `bam source install-outbox`; eventstream's outbox_test.go runs the same
// steps.)
func ExampleOutboxTx() {
	ctx := context.Background()
	db, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	outbox, err := eventstream.NewOutbox(eventstream.OutboxConfig{Table: "bam_outbox"})
	if err != nil {
		log.Fatal(err)
	}

	approve := func(ctx context.Context, po string) error {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE purchase_orders SET status = 'approved' WHERE id = $1`, po); err != nil {
				return err
			}
			w := pgstream.OutboxTx(outbox, tx)
			if err := w.UpdateActivity(ctx, "PurchaseOrder", po, eventstream.Data{"Approved": time.Now()}); err != nil {
				return err // the transaction rolls back: no approval, no event
			}
			return w.EnableContinuation(ctx, "PurchaseOrder", po, "ship-"+po)
		})
	}
	if err := approve(ctx, "PO-1042"); err != nil {
		log.Fatal(err)
	}
}
