package store

import (
	"context"
	"fmt"
	"time"
)

// Alerts (package alert has the protocol). Their evaluation is the one
// session of a built-in source that `bam deploy` adds with the first
// alert; its firings and their deliveries are kept here, written once for
// both drivers (AlertAccess).

// AlertsSource is the name of the built-in source whose one session
// evaluates the alerts. Source names users give are letters, digits, _
// and -, so it cannot be taken.
const AlertsSource = "bam.alerts"

// KindAlerts is the kind of AlertsSource: it has no events to read; its
// owner evaluates the alerts.
const KindAlerts SourceKind = "alerts"

// AlertsSessionSource is the source AlertsSource as AddSource creates it.
var AlertsSessionSource = Source{Name: AlertsSource, Kind: KindAlerts, Partitions: 1, Enabled: true}

// Firing is a key for which an alert's condition became true.
type Firing struct {
	ID       int64
	Activity string
	Alert    string
	// Key is the instance id (an instance alert) or the aggregation cell,
	// as JSON (an aggregate alert).
	Key      string
	Severity string
	Message  string
	// Value is an aggregate alert's measure when it fired; "" otherwise.
	Value   string
	FiredAt time.Time
	// ClearedAt is when the condition stopped holding for the key (or the
	// alert was removed); nil while the firing is open.
	ClearedAt *time.Time
	// Node and Epoch are the owner of the alerts session that fired it.
	Node  string
	Epoch int64
	// Deliveries are filled by AlertHistory.
	Deliveries []Delivery
}

// Delivery channels.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// DeliveryState is where a delivery is.
type DeliveryState string

// The delivery states.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// Delivery is a firing's delivery to one subscriber.
type Delivery struct {
	// ID is what the receiver sees, the same on every attempt.
	ID       string
	FiringID int64
	Channel  string // ChannelWebhook or ChannelEmail
	// Target is the webhook's URL (it may hold a token: show it through
	// definition.Redacted) or the email address.
	Target string
	// SecretEnv names the environment variable holding the webhook's
	// signing secret on the delivering node; "" for none.
	SecretEnv   string
	State       DeliveryState
	Attempts    int
	NextAt      time.Time
	LastError   string
	DeliveredAt *time.Time
}

// DueDelivery is a pending delivery whose next attempt is due, with its
// firing.
type DueDelivery struct {
	Delivery
	Firing Firing
}

// NewFiring is a firing to record, with its deliveries (ID, Channel,
// Target and SecretEnv set).
type NewFiring struct {
	Activity, Alert, Key string
	Severity, Message    string
	Value                string
	Deliveries           []Delivery
}

// AlertRound is what one evaluation commits, fenced on the alerts
// session's lease: new firings and the ids of open firings to clear.
type AlertRound struct {
	Lease
	Node  string
	Fire  []NewFiring
	Clear []int64
}

// DeliveryResult is the outcome of one attempt.
type DeliveryResult struct {
	Delivered bool
	// Failed: no attempt will be made again (a permanent error, or the
	// delivery is too old to retry).
	Failed bool
	// Error says why it was not delivered.
	Error string
	// RetryIn is how long until the next attempt, when neither Delivered
	// nor Failed.
	RetryIn time.Duration
}

// AlertHistoryQuery selects firings, newest first.
type AlertHistoryQuery struct {
	Activity string // any case; "" for every activity
	Alert    string // any case; "" for every alert
	OpenOnly bool
	BeforeID int64 // firings older than this one (paging); 0: from the newest
	Limit    int   // at most this many; 0: 100
}

// AlertStore keeps the alerts' firings and deliveries. Both SQL drivers
// implement it (AlertAccess).
type AlertStore interface {
	// OpenFirings lists every firing not cleared.
	OpenFirings(ctx context.Context) ([]Firing, error)
	// CommitAlerts records a round in one transaction, only while r.Node
	// owns the alerts session under r.Epoch (else ErrFenced and nothing is
	// written): the new firings with their deliveries, due at once, and
	// the clearing of r.Clear. The session's applied count grows by the
	// firings.
	CommitAlerts(ctx context.Context, r AlertRound) error
	// DueDeliveries lists up to limit pending deliveries whose next
	// attempt is due by the store's clock, the most overdue first.
	DueDeliveries(ctx context.Context, limit int) ([]DueDelivery, error)
	// GivenUpDeliveries lists up to limit deliveries that failed for good
	// (no attempt will be made again) less than within ago by the store's
	// clock, the latest first, with their firings. It reads every failed
	// delivery kept (PurgeAlertHistory bounds them): for a periodic check,
	// not a hot path.
	GivenUpDeliveries(ctx context.Context, within time.Duration, limit int) ([]DueDelivery, error)
	// RecordDelivery records an attempt of a pending delivery; a no-op
	// when it is no longer pending.
	RecordDelivery(ctx context.Context, id string, r DeliveryResult) error
	// AlertHistory lists firings, newest first, with their deliveries.
	AlertHistory(ctx context.Context, q AlertHistoryQuery) ([]Firing, error)
	// AlertSummary counts an alert's open firings and says when it last
	// fired (nil: never, in the kept history), reading indexes only.
	AlertSummary(ctx context.Context, activity, alert string) (open int64, lastFired *time.Time, err error)
	// PendingDeliveries counts the deliveries not delivered nor failed yet,
	// up to bound (Backlog.AtLeast past it), and how long the oldest
	// firing among them has waited, by the store's clock: the alerts
	// session's backlog.
	PendingDeliveries(ctx context.Context, bound int64) (Backlog, error)
	// PurgeAlertHistory deletes the firings cleared longer ago than keep
	// by the store's clock, and their deliveries; it returns how many.
	PurgeAlertHistory(ctx context.Context, keep time.Duration) (int64, error)
}

// Exec runs a statement that returns no rows through a driver and says how
// many rows it changed.
type Exec func(ctx context.Context, sql string, args ...any) (int64, error)

// AlertAccess implements AlertStore over a driver's queries. Its SQL
// numbers its parameters $1, $2…: the SQLite driver rewrites them ?1, ?2…
type AlertAccess struct {
	Query Query
	// InTx runs fn in one write transaction.
	InTx func(ctx context.Context, fn func(q Query, exec Exec) error) error
	// Now is the store's clock in SQL, as its instants are stored.
	Now string
	// Later is Now plus the microseconds of the parameter p, in SQL.
	Later func(p string) string
}

var _ AlertStore = AlertAccess{}

const firingColumns = `f.id, f.activity, f.alert, f.key, f.severity, f.message, f.value, f.fired_at, f.cleared_at, f.node, f.epoch`

func scanFiring(r RowScanner) (Firing, error) {
	var f Firing
	err := r.Scan(&f.ID, &f.Activity, &f.Alert, &f.Key, &f.Severity, &f.Message, &f.Value,
		Instant(&f.FiredAt), NullInstant(&f.ClearedAt), &f.Node, &f.Epoch)
	return f, err
}

const deliveryColumns = `d.id, d.firing_id, d.channel, d.target, d.secret_env, d.state, d.attempts, d.next_at, d.last_error, d.delivered_at`

func scanDelivery(r RowScanner) (Delivery, error) {
	var (
		d     Delivery
		state string
	)
	err := r.Scan(&d.ID, &d.FiringID, &d.Channel, &d.Target, &d.SecretEnv, &state, &d.Attempts,
		Instant(&d.NextAt), &d.LastError, NullInstant(&d.DeliveredAt))
	d.State = DeliveryState(state)
	return d, err
}

// OpenFirings implements AlertStore.
func (a AlertAccess) OpenFirings(ctx context.Context) ([]Firing, error) {
	out, err := Collect(ctx, a.Query, scanFiring, `SELECT `+firingColumns+` FROM bam_alert_firings AS f WHERE f.cleared_at IS NULL ORDER BY f.id`)
	if err != nil {
		return nil, fmt.Errorf("read the open alert firings: %w", err)
	}
	return out, nil
}

// CommitAlerts implements AlertStore.
func (a AlertAccess) CommitAlerts(ctx context.Context, r AlertRound) error {
	err := a.InTx(ctx, func(q Query, exec Exec) error {
		n, err := exec(ctx, `UPDATE bam_sessions SET applied_count = applied_count + $4
			WHERE source = $1 AND partition = 0 AND owner = $2 AND epoch = $3`,
			AlertsSource, r.Node, r.Epoch, int64(len(r.Fire)))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("node %s, epoch %d: %w", r.Node, r.Epoch, ErrFenced)
		}
		for _, id := range r.Clear {
			if _, err := exec(ctx, `UPDATE bam_alert_firings SET cleared_at = `+a.Now+` WHERE id = $1 AND cleared_at IS NULL`, id); err != nil {
				return fmt.Errorf("clear firing %d: %w", id, err)
			}
		}
		for _, f := range r.Fire {
			var id int64
			err := q(ctx, func(rows Rows) error {
				if !rows.Next() {
					if err := rows.Err(); err != nil {
						return err
					}
					return fmt.Errorf("no id returned")
				}
				return rows.Scan(&id)
			}, `INSERT INTO bam_alert_firings (activity, alert, key, severity, message, value, fired_at, node, epoch)
				VALUES ($1, $2, $3, $4, $5, $6, `+a.Now+`, $7, $8) RETURNING id`,
				f.Activity, f.Alert, f.Key, f.Severity, f.Message, f.Value, r.Node, r.Epoch)
			if err != nil {
				return fmt.Errorf("fire %s.%s for %s: %w", f.Activity, f.Alert, f.Key, err)
			}
			for _, d := range f.Deliveries {
				if _, err := exec(ctx, `INSERT INTO bam_alert_deliveries (id, firing_id, channel, target, secret_env, next_at)
					VALUES ($1, $2, $3, $4, $5, `+a.Now+`)`, d.ID, id, d.Channel, d.Target, d.SecretEnv); err != nil {
					return fmt.Errorf("delivery %s of %s.%s: %w", d.ID, f.Activity, f.Alert, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit alert round: %w", err)
	}
	return nil
}

// DueDeliveries implements AlertStore.
func (a AlertAccess) DueDeliveries(ctx context.Context, limit int) ([]DueDelivery, error) {
	out, err := Collect(ctx, a.Query, scanDueDelivery, `SELECT `+deliveryColumns+`, `+firingColumns+`
		FROM bam_alert_deliveries AS d JOIN bam_alert_firings AS f ON f.id = d.firing_id
		WHERE d.state = 'pending' AND d.next_at <= `+a.Now+`
		ORDER BY d.next_at, d.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read the due alert deliveries: %w", err)
	}
	return out, nil
}

// GivenUpDeliveries implements AlertStore. A delivery given up keeps the
// next_at of the attempt that gave up, which was made when due: it gave up
// then, or a little after if no node evaluated the alerts at that time.
func (a AlertAccess) GivenUpDeliveries(ctx context.Context, within time.Duration, limit int) ([]DueDelivery, error) {
	out, err := Collect(ctx, a.Query, scanDueDelivery, `SELECT `+deliveryColumns+`, `+firingColumns+`
		FROM bam_alert_deliveries AS d JOIN bam_alert_firings AS f ON f.id = d.firing_id
		WHERE d.state = 'failed' AND d.next_at >= `+a.Later("$1")+`
		ORDER BY d.next_at DESC, d.id LIMIT $2`, -within.Microseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("read the alert deliveries given up: %w", err)
	}
	return out, nil
}

// scanDueDelivery scans deliveryColumns then firingColumns.
func scanDueDelivery(r RowScanner) (DueDelivery, error) {
	var (
		d     DueDelivery
		state string
	)
	f := &d.Firing
	err := r.Scan(&d.ID, &d.FiringID, &d.Channel, &d.Target, &d.SecretEnv, &state, &d.Attempts,
		Instant(&d.NextAt), &d.LastError, NullInstant(&d.DeliveredAt),
		&f.ID, &f.Activity, &f.Alert, &f.Key, &f.Severity, &f.Message, &f.Value,
		Instant(&f.FiredAt), NullInstant(&f.ClearedAt), &f.Node, &f.Epoch)
	d.State = DeliveryState(state)
	return d, err
}

// RecordDelivery implements AlertStore.
func (a AlertAccess) RecordDelivery(ctx context.Context, id string, r DeliveryResult) error {
	var (
		sql  string
		args = []any{id, r.Error}
	)
	switch {
	case r.Delivered:
		sql = `UPDATE bam_alert_deliveries SET state = 'delivered', attempts = attempts + 1, last_error = $2, delivered_at = ` + a.Now + `
			WHERE id = $1 AND state = 'pending'`
	case r.Failed:
		sql = `UPDATE bam_alert_deliveries SET state = 'failed', attempts = attempts + 1, last_error = $2
			WHERE id = $1 AND state = 'pending'`
	default:
		sql = `UPDATE bam_alert_deliveries SET attempts = attempts + 1, last_error = $2, next_at = ` + a.Later("$3") + `
			WHERE id = $1 AND state = 'pending'`
		args = append(args, r.RetryIn.Microseconds())
	}
	err := a.InTx(ctx, func(_ Query, exec Exec) error {
		_, err := exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record delivery %s: %w", id, err)
	}
	return nil
}

// AlertHistory implements AlertStore.
func (a AlertAccess) AlertHistory(ctx context.Context, q AlertHistoryQuery) ([]Firing, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	firings, err := Collect(ctx, a.Query, scanFiring, `SELECT `+firingColumns+` FROM bam_alert_firings AS f
		WHERE ($1 = '' OR lower(f.activity) = lower($1)) AND ($2 = '' OR lower(f.alert) = lower($2))
		  AND (f.cleared_at IS NULL OR $3 = 0) AND (CAST($4 AS BIGINT) = 0 OR f.id < CAST($4 AS BIGINT))
		ORDER BY f.id DESC LIMIT $5`, q.Activity, q.Alert, boolInt(q.OpenOnly), q.BeforeID, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("read the alert history: %w", err)
	}
	if len(firings) == 0 {
		return nil, nil
	}
	deliveries, err := Collect(ctx, a.Query, scanDelivery, `SELECT `+deliveryColumns+` FROM bam_alert_deliveries AS d
		WHERE d.firing_id BETWEEN $1 AND $2 ORDER BY d.firing_id, d.id`, firings[len(firings)-1].ID, firings[0].ID)
	if err != nil {
		return nil, fmt.Errorf("read the alert deliveries: %w", err)
	}
	byFiring := map[int64]*Firing{}
	for i := range firings {
		byFiring[firings[i].ID] = &firings[i]
	}
	for _, d := range deliveries {
		if f, ok := byFiring[d.FiringID]; ok {
			f.Deliveries = append(f.Deliveries, d)
		}
	}
	return firings, nil
}

// AlertSummary implements AlertStore: the open firings through the index
// that keeps them unique, the last one through the index by alert.
func (a AlertAccess) AlertSummary(ctx context.Context, activity, alert string) (int64, *time.Time, error) {
	var (
		open int64
		last *time.Time
	)
	err := a.Query(ctx, func(rows Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		return rows.Scan(&open)
	}, `SELECT count(*) FROM bam_alert_firings WHERE activity = $1 AND alert = $2 AND cleared_at IS NULL`, activity, alert)
	if err == nil {
		err = a.Query(ctx, func(rows Rows) error {
			if !rows.Next() {
				return rows.Err()
			}
			return rows.Scan(NullInstant(&last))
		}, `SELECT f.fired_at FROM bam_alert_firings AS f WHERE lower(f.activity) = lower($1) AND lower(f.alert) = lower($2)
			ORDER BY f.id DESC LIMIT 1`, activity, alert)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("summarize alert %s.%s: %w", activity, alert, err)
	}
	return open, last, nil
}

// PendingDeliveries implements AlertStore, through the index of the
// pending deliveries.
func (a AlertAccess) PendingDeliveries(ctx context.Context, bound int64) (Backlog, error) {
	var (
		b      Backlog
		oldest *time.Time
		now    time.Time
	)
	err := a.Query(ctx, func(rows Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		return rows.Scan(&b.Events)
	}, `SELECT count(*) FROM (SELECT 1 FROM bam_alert_deliveries WHERE state = 'pending' LIMIT $1) AS p`, bound+1)
	if err == nil && b.Events > 0 {
		err = a.Query(ctx, func(rows Rows) error {
			if !rows.Next() {
				return rows.Err()
			}
			return rows.Scan(NullInstant(&oldest), Instant(&now))
		}, `SELECT min(f.fired_at), `+a.Now+` FROM bam_alert_firings AS f WHERE f.id =
			(SELECT min(d.firing_id) FROM bam_alert_deliveries AS d WHERE d.state = 'pending')`)
	}
	if err != nil {
		return Backlog{}, fmt.Errorf("count the pending alert deliveries: %w", err)
	}
	if b.Events > bound {
		b.Events, b.AtLeast = bound, true
	}
	if oldest != nil {
		b.OldestAge = max(0, now.Sub(*oldest))
	}
	return b, nil
}

// PurgeAlertHistory implements AlertStore.
func (a AlertAccess) PurgeAlertHistory(ctx context.Context, keep time.Duration) (int64, error) {
	var n int64
	err := a.InTx(ctx, func(_ Query, exec Exec) error {
		cutoff := a.Later("$1")
		if _, err := exec(ctx, `DELETE FROM bam_alert_deliveries WHERE firing_id IN
			(SELECT id FROM bam_alert_firings WHERE cleared_at < `+cutoff+`)`, -keep.Microseconds()); err != nil {
			return err
		}
		var err error
		n, err = exec(ctx, `DELETE FROM bam_alert_firings WHERE cleared_at < `+cutoff, -keep.Microseconds())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge the alert history: %w", err)
	}
	return n, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
