// Command pgonly writes events to a PostgreSQL store with pgstream alone:
// it links no SQLite (see package onedriver).
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/internal/onedriver"
	"github.com/bam-dev/bam/eventstream/pgstream"
)

func main() {
	if err := run(context.Background(), os.Getenv("BAM_STORE")); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, storeURL string) error {
	direct, err := onedriver.Open(ctx, pgstream.New(), storeURL)
	if err != nil {
		return err
	}
	defer direct.Close(ctx)
	conn, err := pgx.Connect(ctx, storeURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	outbox, err := eventstream.NewOutbox(eventstream.OutboxConfig{})
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := pgstream.DirectTx(direct, tx).UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Amount": "1200.00"}); err != nil {
			return err
		}
		return pgstream.OutboxTx(outbox, tx).EndActivity(ctx, "PurchaseOrder", "PO-1")
	})
	if err != nil {
		return err
	}
	fmt.Println("PO-1: buffered, direct, in a pgx transaction and in its outbox")
	return nil
}
