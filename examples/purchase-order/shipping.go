package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/eventstream"
)

// The activity shipping records (definitions.yaml): Carrier, Tracking,
// Weight; milestones Shipped, Delivered.
const activityShipment = "Shipment"

// shipRequest is all the order desk tells shipping: a continuation token
// to report under, and what to ship. Shipping never sees the order id.
type shipRequest struct {
	Token    string
	WeightKg float64
	Rush     bool
}

// shipment is a shipment as shipping records it.
type shipment struct {
	ID       string
	Tracking string
}

// shippingDesk books shipments with carriers and confirms deliveries. It
// records its own Shipment instances, and the order's Shipped and
// Delivered milestones under the continuation token it was given.
type shippingDesk struct {
	be *backend
}

// ship books a shipment: a Shipment instance, and Shipped on the order
// through the token.
func (s *shippingDesk) ship(ctx context.Context, req shipRequest) (shipment, error) {
	var shp shipment
	err := s.be.do(ctx, func(tx *sql.Tx, w eventstream.Writer) error {
		var n int64
		if err := tx.QueryRowContext(ctx, `UPDATE counters SET n = n + 1 WHERE name = 'shipment' RETURNING n`).Scan(&n); err != nil {
			return err
		}
		carrier := "UPS Ground"
		if req.Rush {
			carrier = "DHL Express"
		}
		shp = shipment{ID: fmt.Sprintf("SHP-%d", n), Tracking: fmt.Sprintf("1Z%010d", 4_700_000_000+n)}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO shipments (id, token, carrier, tracking, weight, status) VALUES ($1, $2, $3, $4, $5, 'shipped')`,
			shp.ID, req.Token, carrier, shp.Tracking, req.WeightKg); err != nil {
			return err
		}
		now := clock()
		if err := w.BeginActivity(ctx, activityShipment, shp.ID, eventstream.At(now)); err != nil {
			return err
		}
		if err := w.UpdateActivity(ctx, activityShipment, shp.ID, eventstream.Data{
			"Carrier": carrier, "Tracking": shp.Tracking, "Weight": req.WeightKg, "Shipped": now,
		}, eventstream.At(now)); err != nil {
			return err
		}
		return w.UpdateContinuation(ctx, activityPO, req.Token, eventstream.Data{"Shipped": now}, eventstream.At(now))
	})
	return shp, err
}

// errUnknownShipment says that a delivery names no shipment of ours.
var errUnknownShipment = errors.New("no such shipment")

// deliver confirms a shipment's delivery: its Shipment instance ends, and
// so does the order's continuation, which completes the order.
func (s *shippingDesk) deliver(ctx context.Context, id string) error {
	return s.be.do(ctx, func(tx *sql.Tx, w eventstream.Writer) error {
		var token, status string
		err := tx.QueryRowContext(ctx, `SELECT token, status FROM shipments WHERE id = $1`, id).Scan(&token, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("shipment %s: %w", id, errUnknownShipment)
		}
		if err != nil {
			return err
		}
		if status == "delivered" {
			return fmt.Errorf("shipment %s was delivered already", id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE shipments SET status = 'delivered' WHERE id = $1`, id); err != nil {
			return err
		}
		now := clock()
		if err := w.UpdateActivity(ctx, activityShipment, id, eventstream.Data{"Delivered": now}, eventstream.At(now)); err != nil {
			return err
		}
		if err := w.EndActivity(ctx, activityShipment, id, eventstream.At(now)); err != nil {
			return err
		}
		if err := w.UpdateContinuation(ctx, activityPO, token, eventstream.Data{"Delivered": now}, eventstream.At(now)); err != nil {
			return err
		}
		return w.EndContinuation(ctx, activityPO, token, eventstream.At(now))
	})
}
