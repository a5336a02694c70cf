// Command purchase-order is a small purchase-order application that records
// its business activity in bam with the eventstream package.
//
// An order desk receives purchase orders, approves those up to an amount,
// and hands approved orders to a shipping desk that knows only a
// continuation token. Shipping books a Shipment, reports Shipped (and, for
// rush orders, Delivered) on the order through the token; the order desk
// relates the order to its shipment and references the order document.
//
// Usage:
//
//	purchase-order [flags]                  receive the orders (--orders FILE, or a sample)
//	purchase-order [flags] deliver SHP-1 …  confirm deliveries
//
// With --pg-dsn the application keeps its data in PostgreSQL and writes its
// events into the outbox table there, in each business transaction.
// Without it, it keeps its data in a SQLite file (--app-db) and writes its
// events through a buffered stream into the store (--store, or BAM_STORE).
// README.md has the walkthrough.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "purchase-order:", err)
		os.Exit(1)
	}
}

// clock is when an event happens: the store keeps microseconds.
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

type config struct {
	store, source string
	pgDSN, table  string
	appDB         string
	ordersFile    string
	approvalLimit string
	documentsURL  string
}

func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	var c config
	fs := flag.NewFlagSet("purchase-order", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&c.store, "store", cmp.Or(getenv("BAM_STORE"), "sqlite:bam-data/bam.db"), "the bam store (SQLite mode): sqlite:PATH or postgres://…; default $BAM_STORE")
	fs.StringVar(&c.source, "source", "orders", "the store's buffer source (SQLite mode)")
	fs.StringVar(&c.appDB, "app-db", "bam-data/purchase-orders.db", "the application's own SQLite database (SQLite mode)")
	fs.StringVar(&c.pgDSN, "pg-dsn", "", "the application's PostgreSQL database, with the outbox table: switches to outbox mode")
	fs.StringVar(&c.table, "outbox-table", "bam_outbox", "the outbox table (outbox mode)")
	fs.StringVar(&c.ordersFile, "orders", "", "a JSON file of orders: [{\"id\", \"customer\", \"amount\", \"quantity\", \"rush\", \"weight_kg\"}]; default: four sample orders")
	fs.StringVar(&c.approvalLimit, "approval-limit", "5000.00", "orders above this amount wait for a manager's approval")
	fs.StringVar(&c.documentsURL, "documents-url", "https://erp.example.com/purchase-orders/", "order documents are at this URL + the order id")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: purchase-order [flags]                  receive orders\n       purchase-order [flags] deliver SHP-ID...  confirm deliveries")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	limit, err := parseCents(c.approvalLimit)
	if err != nil {
		return fmt.Errorf("--approval-limit: %w", err)
	}
	var deliveries []string
	switch rest := fs.Args(); {
	case len(rest) == 0:
	case rest[0] == "deliver" && len(rest) > 1:
		deliveries = rest[1:]
	default:
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", rest)
	}
	orders := sampleOrders
	if c.ordersFile != "" && deliveries == nil {
		if orders, err = readOrders(c.ordersFile); err != nil {
			return err
		}
	}

	var be *backend
	if c.pgDSN != "" {
		be, err = openOutbox(ctx, c.pgDSN, c.table)
	} else {
		if err := os.MkdirAll(filepath.Dir(c.appDB), 0o755); err != nil {
			return err
		}
		be, err = openBuffered(ctx, c.appDB, c.store, c.source)
	}
	if err != nil {
		return err
	}
	err = c.work(ctx, be, limit, orders, deliveries, stdout)
	if cerr := be.close(ctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("some events were not written to the store: %w", cerr))
	}
	return err
}

func (c config) work(ctx context.Context, be *backend, limit int64, orders []order, deliveries []string, stdout io.Writer) error {
	shipping := &shippingDesk{be: be}
	fmt.Fprintf(stdout, "Events go to %s.\n\n", be.where)
	if deliveries != nil {
		for _, id := range deliveries {
			if err := shipping.deliver(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s delivered.\n", id)
		}
		c.printOperator(stdout, nil, deliveries)
		return nil
	}

	desk := &orderDesk{be: be, limitCents: limit, approvalLimit: formatCents(limit), documentsURL: c.documentsURL, shipping: shipping}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tCUSTOMER\tAMOUNT\tSTATUS\tSHIPMENT\tTRACKING")
	var done []outcome
	for _, o := range orders {
		out, err := desk.process(ctx, o)
		if errors.Is(err, errAlreadyReceived) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\n", o.ID, o.Customer, o.Amount, "skipped: already received")
			continue
		}
		if err != nil {
			tw.Flush()
			return err
		}
		done = append(done, out)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Customer, o.Amount, out.status, cmp.Or(out.shipment, "-"), cmp.Or(out.tracking, "-"))
	}
	tw.Flush()
	c.printOperator(stdout, done, nil)
	return nil
}

// printOperator says what an operator sees once a node applied the events.
func (c config) printOperator(w io.Writer, done []outcome, delivered []string) {
	store := ""
	if c.pgDSN == "" && c.store != "sqlite:bam-data/bam.db" {
		store = " --store " + c.store
	} else if c.pgDSN != "" {
		store = " --store <the bam store>"
	}
	fmt.Fprintf(w, "\nOnce a bam node has applied the events (bam serve), an operator sees them with:\n\n")
	var inTransit []string
	for _, d := range done {
		fmt.Fprintf(w, "  bam instance get PurchaseOrder %s%s\n", d.order.ID, store)
		if d.shipment != "" {
			fmt.Fprintf(w, "  bam instance get Shipment %s%s\n", d.shipment, store)
		}
		if d.status == "shipped" {
			inTransit = append(inTransit, d.shipment)
		}
	}
	for _, id := range delivered {
		fmt.Fprintf(w, "  bam instance get Shipment %s%s\n", id, store)
	}
	fmt.Fprintf(w, "  bam instance list PurchaseOrder --state active%s   # awaiting approval, or in transit\n", store)
	if len(inTransit) > 0 {
		fmt.Fprintf(w, "\nWhen the carrier delivers: purchase-order deliver %s (with the same flags)\n", strings.Join(inTransit, " "))
	}
}

func readOrders(path string) ([]order, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var orders []order
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&orders); err != nil {
		return nil, fmt.Errorf("read orders from %s: %w", path, err)
	}
	return orders, nil
}

// splitStatements splits a script of statements, each ending with ";" at the
// end of a line.
func splitStatements(script string) []string {
	var out []string
	for _, s := range strings.Split(script, ";\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
