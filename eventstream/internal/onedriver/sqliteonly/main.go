// Command sqliteonly writes events to a SQLite store with sqlitestream
// alone: it links no PostgreSQL client (see package onedriver).
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/internal/onedriver"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
)

func main() {
	if err := run(context.Background(), os.Getenv("BAM_STORE")); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, storeURL string) error {
	direct, err := onedriver.Open(ctx, sqlitestream.New(), storeURL)
	if err != nil {
		return err
	}
	defer direct.Close(ctx)
	dsn, err := sqlitestream.DSN(storeURL)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := direct.SQL(tx).UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Amount": "1200.00"}); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	fmt.Println("PO-1: buffered, direct and in a transaction on the store's file")
	return nil
}
