package eventstream_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
)

// A buffered stream into the store's buffer source "orders": events are
// held in memory and written in one transaction by Flush (or when
// FlushThreshold of them are held). A node (bam serve) then applies them.
func ExampleOpenBuffered() {
	ctx := context.Background()
	storeURL, cleanup := exampleStore() // as `bam migrate` and `bam source add orders --kind buffer` leave it
	defer cleanup()

	stream, err := eventstream.OpenBuffered(ctx, sqlitestream.New(), storeURL, "orders", eventstream.BufferedOptions{})
	if err != nil {
		log.Fatal(err)
	}
	received := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	approved := received.Add(32 * time.Minute)

	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	check(stream.BeginActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.At(received)))
	check(stream.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{
		"Received": received,
		"Customer": "Contoso",
		"Amount":   "1200.00", // a decimal, kept exact
		"Quantity": 12,
		"Rush":     false,
	}, eventstream.At(received)))
	check(stream.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{"Approved": approved}, eventstream.At(approved)))
	check(stream.EndActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.At(approved)))
	fmt.Println("held in memory:", stream.Pending())

	check(stream.Flush(ctx)) // durable once Flush returns nil
	fmt.Println("held after Flush:", stream.Pending())
	check(stream.Close(ctx))

	fmt.Println(applied(storeURL, "PurchaseOrder", "PO-1042")) // what bam instance get shows, once a node applied them
	// Output:
	// held in memory: 4
	// held after Flush: 0
	// PurchaseOrder PO-1042 completed, 4 events: Amount="1200.00" Approved="2026-11-25T10:02:00.000000Z" Customer="Contoso" Quantity=12 Received="2026-11-25T09:30:00.000000Z" Rush=false
}

// Closing a stream that holds events is an error, not a silent loss: the
// events are kept until they are flushed (or discarded on purpose).
func ExampleBuffered_Close() {
	ctx := context.Background()
	stream, cleanup := exampleStream(ctx) // as OpenBuffered returns it, on a source "orders"
	defer cleanup()
	if err := stream.BeginActivity(ctx, "PurchaseOrder", "PO-1043"); err != nil {
		log.Fatal(err)
	}

	err := stream.Close(ctx)
	fmt.Println(errors.Is(err, eventstream.ErrUnflushed), err)

	if err := stream.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(stream.Close(ctx))
	// Output:
	// true eventstream: event stream holds unflushed events: 1 events for source orders; call Flush, then Close (or Discard them)
	// <nil>
}

// Every event is checked before it is written; the error names the field.
func ExampleEventError() {
	ctx := context.Background()
	stream, cleanup := exampleStream(ctx) // as OpenBuffered returns it, on a source "orders"
	defer cleanup()
	defer stream.Close(ctx)

	err := stream.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{"Lines": []string{"A-1", "B-7"}})
	var evErr *eventstream.EventError
	if errors.As(err, &evErr) {
		fmt.Println("refused:", evErr.Field)
	}
	err = stream.AddReference(ctx, "PurchaseOrder", "PO-1042", eventstream.Reference{Type: "order document", Name: "order", Value: "https://erp.example.com/po/1042"})
	fmt.Println(errors.Is(err, eventstream.ErrInvalidEvent), err)
	fmt.Println("held:", stream.Pending())
	// Output:
	// refused: data.Lines
	// true eventstream: reference event of PurchaseOrder "PO-1042": reference.type: name "order document" may hold only letters, digits and underscores, and must not start with a digit
	// held: 0
}

// A purchase order hands shipping to another component that knows only a
// continuation token: its events under the token merge into the order.
// The two instances are related, and the order references its document.
func ExampleWriter_continuation() {
	ctx := context.Background()
	stream, cleanup := exampleStream(ctx) // as OpenBuffered returns it, on a source "orders"
	defer cleanup()
	var w eventstream.Writer = stream
	steps := []error{
		// The order component.
		w.BeginActivity(ctx, "PurchaseOrder", "PO-1044"),
		w.AddReference(ctx, "PurchaseOrder", "PO-1044", eventstream.Reference{Type: "url", Name: "order", Value: "https://erp.example.com/po/1044"}),
		w.EnableContinuation(ctx, "PurchaseOrder", "PO-1044", "ship-PO-1044"),
		w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1044", "Shipment", "SHP-88"),
		w.EndActivity(ctx, "PurchaseOrder", "PO-1044"),
		// The shipping component knows only the token.
		w.BeginActivity(ctx, "Shipment", "SHP-88"),
		w.UpdateActivity(ctx, "Shipment", "SHP-88", eventstream.Data{"Carrier": "DHL", "Weight": 12.5}),
		w.UpdateContinuation(ctx, "PurchaseOrder", "ship-PO-1044", eventstream.Data{"Shipped": time.Now()}),
		w.EndContinuation(ctx, "PurchaseOrder", "ship-PO-1044"),
	}
	if err := errors.Join(steps...); err != nil {
		log.Fatal(err)
	}
	if err := stream.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(stream.Close(ctx))
	// Output:
	// <nil>
}

// An outbox writes events in the application's own PostgreSQL transaction,
// here through database/sql and pgx's stdlib driver (import _
// "github.com/jackc/pgx/v5/stdlib"): they are committed if and only if the
// business change is. (This example needs a PostgreSQL database with an
// outbox installed by `bam source install-outbox`; outbox_test.go runs the
// same steps.) The outbox needs no store driver; pgstream.OutboxTx takes a
// pgx.Tx instead.
func ExampleOutbox_SQL() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	outbox, err := eventstream.NewOutbox(eventstream.OutboxConfig{})
	if err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `INSERT INTO purchase_orders (id, customer, amount) VALUES ($1, $2, $3)`,
		"PO-1045", "Fabrikam", "310.00"); err != nil {
		log.Fatal(err)
	}
	w := outbox.SQL(tx)
	if err := w.BeginActivity(ctx, "PurchaseOrder", "PO-1045"); err != nil {
		log.Fatal(err)
	}
	if err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1045", eventstream.Data{
		"Received": time.Now(), "Customer": "Fabrikam", "Amount": "310.00",
	}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
}
