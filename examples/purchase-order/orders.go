package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/eventstream"
)

// The activity the order desk records (definitions.yaml): milestones
// Received, Approved, Shipped, Delivered; data Customer, Amount, Quantity,
// Rush.
const activityPO = "PurchaseOrder"

// order is a purchase order as it arrives.
type order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	Amount   string  `json:"amount"` // a decimal with at most 2 digits after the point, e.g. "1200.00"
	Quantity int     `json:"quantity"`
	Rush     bool    `json:"rush"`
	WeightKg float64 `json:"weight_kg"`
}

// sampleOrders are what the application receives when no --orders file is
// given.
var sampleOrders = []order{
	{ID: "PO-1001", Customer: "Contoso", Amount: "1200.00", Quantity: 12, WeightKg: 14.5},
	{ID: "PO-1002", Customer: "Fabrikam", Amount: "310.50", Quantity: 3, Rush: true, WeightKg: 2.25},
	{ID: "PO-1003", Customer: "Northwind Traders", Amount: "18750.00", Quantity: 150, WeightKg: 410},
	{ID: "PO-1004", Customer: "Tailspin Toys", Amount: "4999.99", Quantity: 40, Rush: true, WeightKg: 63.8},
}

// errAlreadyReceived says that an order id was received before.
var errAlreadyReceived = errors.New("already received")

// orderDesk receives purchase orders, approves those up to a limit, and
// hands them to shipping. It records each step in its own database and as
// events of the order's PurchaseOrder instance, in one unit of work.
type orderDesk struct {
	be            *backend
	limitCents    int64
	documentsURL  string // the order document's URL is documentsURL + id
	shipping      *shippingDesk
	approvalLimit string
}

// outcome is what became of one order, for the operator.
type outcome struct {
	order    order
	status   string // received, awaiting approval, shipped, delivered
	shipment string
	tracking string
}

// process takes one order through the desk: receive, approve (or leave it
// awaiting approval), ship, and, for rush orders, the carrier's next-day
// delivery.
func (d *orderDesk) process(ctx context.Context, o order) (outcome, error) {
	out := outcome{order: o}
	cents, err := parseCents(o.Amount)
	if err != nil {
		return out, fmt.Errorf("order %s: amount: %w", o.ID, err)
	}
	if err := d.receive(ctx, o, cents); err != nil {
		return out, err
	}
	out.status = "received"
	if cents > d.limitCents {
		out.status = "awaiting approval (over " + d.approvalLimit + ")"
		return out, nil
	}
	token := "ship-" + o.ID
	if err := d.approve(ctx, o, token); err != nil {
		return out, err
	}
	// Shipping knows the token, not the order.
	shp, err := d.shipping.ship(ctx, shipRequest{Token: token, WeightKg: o.WeightKg, Rush: o.Rush})
	if err != nil {
		return out, err
	}
	if err := d.recordShipment(ctx, o, shp.ID); err != nil {
		return out, err
	}
	out.status, out.shipment, out.tracking = "shipped", shp.ID, shp.Tracking
	if o.Rush {
		if err := d.shipping.deliver(ctx, shp.ID); err != nil {
			return out, err
		}
		out.status = "delivered"
	}
	return out, nil
}

// receive records a new order: begin, its data and the Received milestone,
// and a reference to the order document.
func (d *orderDesk) receive(ctx context.Context, o order, cents int64) error {
	return d.be.do(ctx, func(tx *sql.Tx, w eventstream.Writer) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM purchase_orders WHERE id = $1`, o.ID).Scan(&exists)
		if err != nil {
			return err
		}
		if exists > 0 {
			return fmt.Errorf("order %s: %w", o.ID, errAlreadyReceived)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO purchase_orders (id, customer, amount_cents, quantity, rush, status)
			VALUES ($1, $2, $3, $4, $5, 'received')`, o.ID, o.Customer, cents, o.Quantity, o.Rush); err != nil {
			return err
		}
		now := clock()
		if err := w.BeginActivity(ctx, activityPO, o.ID, eventstream.At(now)); err != nil {
			return err
		}
		if err := w.UpdateActivity(ctx, activityPO, o.ID, eventstream.Data{
			"Received": now,
			"Customer": o.Customer,
			"Amount":   formatCents(cents), // decimal(12,2), exact as a string
			"Quantity": o.Quantity,
			"Rush":     o.Rush,
		}, eventstream.At(now)); err != nil {
			return err
		}
		return w.AddReference(ctx, activityPO, o.ID, eventstream.Reference{
			Type: "url", Name: "order document", Value: d.documentsURL + o.ID,
		}, eventstream.At(now))
	})
}

// approve approves an order and lets shipping continue its instance under
// token.
func (d *orderDesk) approve(ctx context.Context, o order, token string) error {
	return d.be.do(ctx, func(tx *sql.Tx, w eventstream.Writer) error {
		if _, err := tx.ExecContext(ctx, `UPDATE purchase_orders SET status = 'approved' WHERE id = $1`, o.ID); err != nil {
			return err
		}
		now := clock()
		if err := w.UpdateActivity(ctx, activityPO, o.ID, eventstream.Data{"Approved": now}, eventstream.At(now)); err != nil {
			return err
		}
		return w.EnableContinuation(ctx, activityPO, o.ID, token, eventstream.At(now))
	})
}

// recordShipment notes the order's shipment, relates the two instances and
// ends the desk's part of the order: the order completes once shipping
// ends its continuation too.
func (d *orderDesk) recordShipment(ctx context.Context, o order, shipment string) error {
	return d.be.do(ctx, func(tx *sql.Tx, w eventstream.Writer) error {
		if _, err := tx.ExecContext(ctx, `UPDATE purchase_orders SET status = 'shipped', shipment = $2 WHERE id = $1`, o.ID, shipment); err != nil {
			return err
		}
		now := clock()
		if err := w.AddRelatedActivity(ctx, activityPO, o.ID, activityShipment, shipment, eventstream.At(now)); err != nil {
			return err
		}
		return w.EndActivity(ctx, activityPO, o.ID, eventstream.At(now))
	})
}

// parseCents reads a decimal amount with at most two digits after the
// point.
func parseCents(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || whole == "" || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, fmt.Errorf("%q is not an amount such as 1200.00", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w > 9_999_999_999 { // decimal(12,2)
		return 0, fmt.Errorf("%q is not an amount such as 1200.00, below 10,000,000,000", s)
	}
	return w*100 + f, nil
}

func formatCents(c int64) string {
	return fmt.Sprintf("%d.%02d", c/100, c%100)
}
