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

// A direct stream writes each event into the store's instances before the
// method returns: no buffer, no source, no node in between.
func ExampleOpenDirect() {
	ctx := context.Background()
	storeURL, cleanup := exampleStore() // as `bam migrate` leaves it
	defer cleanup()

	stream, err := eventstream.OpenDirect(ctx, sqlitestream.New(), storeURL, eventstream.DirectOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close(ctx)
	received := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	check(stream.BeginActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.At(received)))
	check(stream.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{"Customer": "Contoso", "Amount": "1200.00"}, eventstream.At(received)))
	fmt.Println(stored(storeURL, "PurchaseOrder", "PO-1042")) // what bam instance get shows, at once

	check(stream.EndActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.At(received.Add(time.Hour))))
	fmt.Println(stored(storeURL, "PurchaseOrder", "PO-1042"))
	// Output:
	// PurchaseOrder PO-1042 active, 2 events: Amount="1200.00" Customer="Contoso"
	// PurchaseOrder PO-1042 completed, 3 events: Amount="1200.00" Customer="Contoso"
}

// With a SQLite store, the application can keep its own tables in the
// store's file and write its events in the same transaction as its
// business change: they commit together, or not at all.
func ExampleDirect_SQL() {
	ctx := context.Background()
	storeURL, cleanup := exampleStore()
	defer cleanup()
	stream, err := eventstream.OpenDirect(ctx, sqlitestream.New(), storeURL, eventstream.DirectOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close(ctx)

	// The application's database is the store's file, opened with the
	// store's settings: IMMEDIATE transactions, the store's SQL functions.
	dsn, err := sqlitestream.DSN(storeURL)
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE purchase_orders (id TEXT PRIMARY KEY, customer TEXT, amount TEXT)`); err != nil {
		log.Fatal(err)
	}

	place := func(po, customer, amount string) error {
		tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE
		if err != nil {
			return err
		}
		defer tx.Rollback() // a no-op after Commit
		if _, err := tx.ExecContext(ctx, `INSERT INTO purchase_orders (id, customer, amount) VALUES (?, ?, ?)`, po, customer, amount); err != nil {
			return err
		}
		w := stream.SQL(tx)
		if err := w.BeginActivity(ctx, "PurchaseOrder", po); err != nil {
			return err
		}
		if err := w.UpdateActivity(ctx, "PurchaseOrder", po, eventstream.Data{"Customer": customer, "Amount": amount}); err != nil {
			return err
		}
		if amount == "0.00" {
			return errors.New("an order of nothing") // rolled back: no order, no events
		}
		return tx.Commit()
	}
	fmt.Println(place("PO-1045", "Fabrikam", "310.00"))
	fmt.Println(place("PO-1046", "Fabrikam", "0.00"))
	fmt.Println(stored(storeURL, "PurchaseOrder", "PO-1045"))
	fmt.Println(stored(storeURL, "PurchaseOrder", "PO-1046"))
	// Output:
	// <nil>
	// an order of nothing
	// PurchaseOrder PO-1045 active, 2 events: Amount="310.00" Customer="Fabrikam"
	// PurchaseOrder PO-1046: none
}

// Events are checked against the activity definitions deployed in the
// store (bam deploy) before anything is written; the error names the item
// and the rule.
func ExampleDirect_definitions() {
	ctx := context.Background()
	storeURL, cleanup := exampleStore()
	defer cleanup()
	exampleDeploy(storeURL, `
activities:
  - name: PurchaseOrder
    items:
      - {name: Quantity, type: integer}
`)
	stream, err := eventstream.OpenDirect(ctx, sqlitestream.New(), storeURL, eventstream.DirectOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close(ctx)

	err = stream.UpdateActivity(ctx, "PurchaseOrder", "PO-1047", eventstream.Data{"Quantity": "twelve"})
	var evErr *eventstream.EventError
	if errors.As(err, &evErr) {
		fmt.Println("refused:", evErr.Field)
	}
	fmt.Println(err)
	fmt.Println(stored(storeURL, "PurchaseOrder", "PO-1047"))
	// Output:
	// refused: data.Quantity
	// eventstream: update event of PurchaseOrder "PO-1047": data.Quantity: integer: must be a number, got "twelve"
	// PurchaseOrder PO-1047: none
}
