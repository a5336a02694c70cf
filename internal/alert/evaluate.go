package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// Store is what evaluation needs of the store.
type Store interface {
	store.AlertStore
	store.Searcher
	store.AggregationReader
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	RecordError(ctx context.Context, l store.Lease, node, msg string) error
}

// Config tunes evaluation and delivery; DefaultConfig has the defaults.
type Config struct {
	// Interval is the time between two evaluations.
	Interval time.Duration
	// CurrentInterval, when set, is read before each wait in place of
	// Interval: the pool-wide setting alert-interval, changed live
	// (package settings). It returns a positive interval.
	CurrentInterval func() time.Duration
	// DeliveryPoll is how often the owner looks for deliveries that came
	// due.
	DeliveryPoll time.Duration
	// MaxKeys bounds the keys one alert is evaluated for in a round
	// (doc.go, "Evaluation").
	MaxKeys int
	// MaxFirings bounds the firings one round commits; the rest fire in
	// the next rounds.
	MaxFirings int
	// RetryBase, doubling up to RetryMax, is the wait before a failed
	// delivery's next attempt; GiveUpAfter past its firing, a delivery
	// that still fails is failed for good.
	RetryBase, RetryMax, GiveUpAfter time.Duration
	// HistoryKeep is how long cleared firings are kept.
	HistoryKeep time.Duration
	// Link is the portal's address as receivers reach it
	// ("https://bam.example.com"), for the link a delivery carries; ""
	// for none.
	Link string
	// Send makes one attempt of a delivery (Sender).
	Send Sender
}

// DefaultConfig returns the defaults; Send is to be set.
func DefaultConfig() Config {
	return Config{
		Interval:     10 * time.Second,
		DeliveryPoll: time.Second,
		MaxKeys:      10_000,
		MaxFirings:   1_000,
		RetryBase:    5 * time.Second,
		RetryMax:     10 * time.Minute,
		GiveUpAfter:  24 * time.Hour,
		HistoryKeep:  30 * 24 * time.Hour,
	}
}

// Evaluator is the worker of the alerts session (pool.Worker): it
// evaluates the alerts and delivers their firings while its node holds the
// session's lease.
type Evaluator struct {
	cfg   Config
	st    Store
	node  string
	lease *lease.Lease
	log   *slog.Logger

	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	purged   time.Time // when the history was last purged
	// after is, per instance alert, the id its next round reads on from:
	// the matches are read MaxKeys at a time, round after round, so that
	// every one is read however many match ("" : from the first).
	after map[alertID]string
	// cells is, per aggregate alert, where its reading of the cells is:
	// a large aggregation is read MaxKeys cells a round.
	cells map[alertID]*cellPass
	// afterRound, when set (tests), is called after each round with its
	// error.
	afterRound func(error)
}

// NewEvaluator returns the evaluator of the alerts session held under l by
// node.
func NewEvaluator(cfg Config, st Store, node string, l *lease.Lease, log *slog.Logger) *Evaluator {
	row := l.Row()
	return &Evaluator{cfg: cfg, st: st, node: node, lease: l, wake: make(chan struct{}, 1), stop: make(chan struct{}), after: map[alertID]string{}, cells: map[alertID]*cellPass{},
		log: log.With("source", row.Source, "partition", row.Partition, "epoch", row.Epoch)}
}

// Lease returns the lease the evaluator works under.
func (e *Evaluator) Lease() store.Lease { return e.lease.Row() }

// Wake asks for an evaluation now.
func (e *Evaluator) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stop asks the evaluator to end after the round and deliveries in hand.
func (e *Evaluator) Stop() { e.stopOnce.Do(func() { close(e.stop) }) }

// SourceTrouble is always zero: what fails an evaluation (the store) fails
// it on every node alike.
func (e *Evaluator) SourceTrouble() (time.Time, string) { return time.Time{}, "" }

func (e *Evaluator) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// Run evaluates every Interval and delivers what is due, until Stop (nil),
// ctx's end (its error) or the session's loss (an error wrapping
// bus.ErrLost and the lease's cause).
func (e *Evaluator) Run(ctx context.Context) error {
	work, cancel := context.WithCancel(e.lease.Ctx())
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	e.log.Info("evaluating alerts")

	delivered := make(chan struct{})
	go func() { defer close(delivered); e.deliverLoop(work) }()
	err := e.evaluateLoop(work)
	if err != nil {
		cancel() // lost or ended: the deliveries in hand end too
	}
	<-delivered // stopped (Stop): the deliveries in hand finish first
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case e.lease.Ctx().Err() != nil:
		return fmt.Errorf("%w: %w", bus.ErrLost, context.Cause(e.lease.Ctx()))
	}
	return err
}

func (e *Evaluator) evaluateLoop(ctx context.Context) error {
	timer := time.NewTimer(0) // at once when claimed
	defer timer.Stop()
	failures := 0
	shown := ""
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.stop:
			return nil
		case <-e.wake:
		case <-timer.C:
		}
		err := e.round(ctx)
		if e.afterRound != nil {
			e.afterRound(err)
		}
		switch {
		case errors.Is(err, bus.ErrLost):
			return err
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			failures++
			wait := min(e.cfg.RetryBase<<min(failures-1, 10), e.interval())
			if msg := err.Error(); msg != shown {
				e.log.Warn("alert evaluation failed; retrying", "err", msg, "retry_in", wait)
				if rerr := e.st.RecordError(ctx, e.lease.Row(), e.node, msg); rerr == nil {
					shown = msg
				}
			}
			timer.Reset(wait)
			continue
		}
		if failures > 0 || shown != "" {
			if rerr := e.st.RecordError(ctx, e.lease.Row(), e.node, ""); rerr == nil {
				shown = ""
			}
			failures = 0
		}
		timer.Reset(e.interval())
	}
}

// interval is the time until the next evaluation: Interval, or as it is
// now (CurrentInterval).
func (e *Evaluator) interval() time.Duration {
	if e.cfg.CurrentInterval != nil {
		return e.cfg.CurrentInterval()
	}
	return e.cfg.Interval
}

// alertID names an alert across activities.
type alertID struct{ activity, alert string }

// evaluation is what one alert's condition holds for now.
type evaluation struct {
	// holds maps each key the condition holds for to its firing's
	// fields (the message's placeholders, and value).
	holds map[string]map[string]string
	// judged reports whether a key not in holds was read, and so may be
	// cleared: false past a cut (doc.go, "Evaluation").
	judged func(key string) bool
	// from is the id an instance alert's read started after ("": the
	// first).
	from string
}

// round is one evaluation: read, evaluate, diff, commit; then the history
// purge, once an hour.
func (e *Evaluator) round(ctx context.Context) error {
	acts, _, err := e.st.Definitions(ctx)
	if err != nil {
		return fmt.Errorf("read the definitions: %w", err)
	}
	open, err := e.st.OpenFirings(ctx)
	if err != nil {
		return err
	}
	openBy := map[alertID]map[string]store.Firing{}
	for _, f := range open {
		id := alertID{f.Activity, f.Alert}
		if openBy[id] == nil {
			openBy[id] = map[string]store.Firing{}
		}
		openBy[id][f.Key] = f
	}
	r := store.AlertRound{Lease: e.lease.Row(), Node: e.node}
	var problems []string
	for _, a := range acts {
		for _, al := range a.Alerts {
			id := alertID{a.Name, al.Name}
			ev, err := e.evaluate(ctx, a.Activity, al)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				problems = append(problems, fmt.Sprintf("alert %s.%s: %v", a.Name, al.Name, err))
				delete(openBy, id) // not judged: its firings stay as they are
				continue
			}
			have := openBy[id]
			delete(openBy, id)
			keys := slices.Sorted(maps.Keys(ev.holds))
			for i, key := range keys {
				if _, ok := have[key]; ok {
					continue
				}
				if len(r.Fire) >= e.cfg.MaxFirings {
					// The round is full: an instance alert's next round
					// reads on from the last key this one fired.
					if !al.IsAggregate() {
						e.after[id] = ev.from
						if i > 0 {
							e.after[id] = keys[i-1]
						}
					}
					break
				}
				r.Fire = append(r.Fire, e.firing(a.Activity, al, key, ev.holds[key]))
			}
			for key, f := range have {
				if _, ok := ev.holds[key]; !ok && ev.judged(key) {
					r.Clear = append(r.Clear, f.ID)
				}
			}
		}
	}
	// What is left is open for alerts no longer deployed.
	for _, have := range openBy {
		for _, f := range have {
			r.Clear = append(r.Clear, f.ID)
		}
	}
	if len(r.Fire)+len(r.Clear) > 0 {
		if !e.lease.Trusted() {
			return fmt.Errorf("%w: the lease's local deadline passed before the round could commit", bus.ErrLost)
		}
		if err := e.st.CommitAlerts(ctx, r); err != nil {
			if errors.Is(err, store.ErrFenced) {
				return fmt.Errorf("%w: %v", bus.ErrLost, err)
			}
			return err
		}
		for _, f := range r.Fire {
			e.log.Info("alert fired", "activity", f.Activity, "alert", f.Alert, "key", f.Key, "severity", f.Severity, "deliveries", len(f.Deliveries))
		}
		if len(r.Clear) > 0 {
			e.log.Info("alert firings cleared", "cleared", len(r.Clear))
		}
	}
	if time.Since(e.purged) > time.Hour {
		if n, err := e.st.PurgeAlertHistory(ctx, e.cfg.HistoryKeep); err != nil {
			e.log.Warn("purge of the alert history failed; retrying in an hour", "err", err)
		} else if n > 0 {
			e.log.Info("purged cleared alert firings past their keep", "purged", n, "keep", e.cfg.HistoryKeep)
		}
		e.purged = time.Now()
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// firing makes the firing of al for key, with a delivery per subscriber.
func (e *Evaluator) firing(a definition.Activity, al definition.Alert, key string, fields map[string]string) store.NewFiring {
	msg := al.Message
	if msg == "" {
		msg = DefaultMessage(al)
	}
	fields["activity"], fields["alert"], fields["severity"], fields["key"] = a.Name, al.Name, string(al.SeverityName()), key
	f := store.NewFiring{Activity: a.Name, Alert: al.Name, Key: key, Severity: string(al.SeverityName()),
		Message: expand(msg, fields), Value: fields["value"]}
	for _, s := range al.Subscribers {
		f.Deliveries = append(f.Deliveries, DeliveryTo(s, newDeliveryID()))
	}
	return f
}

// DeliveryTo is a delivery to subscriber s under id: its channel, target
// and secret's variable.
func DeliveryTo(s definition.Subscriber, id string) store.Delivery {
	if s.Webhook != "" {
		return store.Delivery{ID: id, Channel: store.ChannelWebhook, Target: s.Webhook, SecretEnv: s.SecretEnv}
	}
	return store.Delivery{ID: id, Channel: store.ChannelEmail, Target: s.Email}
}

// newDeliveryID is a random id: a receiver subscribed to two pools, or to
// a store restored from a backup, never sees one twice for two firings.
func newDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "bam-" + hex.EncodeToString(b[:])
}

func (e *Evaluator) evaluate(ctx context.Context, a definition.Activity, al definition.Alert) (evaluation, error) {
	if al.IsAggregate() {
		return e.evaluateCells(ctx, a, al)
	}
	return e.evaluateInstances(ctx, a, al)
}

// evaluateInstances runs an instance alert's filter over the instances
// after the id the last round stopped at: its keys are the matching
// instances' ids, in id order, at most MaxKeys. The ids it judges are
// those from there to the last it read, or to the end when the page was
// the last; the next round reads on, or from the first again.
func (e *Evaluator) evaluateInstances(ctx context.Context, a definition.Activity, al definition.Alert) (evaluation, error) {
	names, _ := placeholders(al.Message)
	var columns []string
	for _, n := range names {
		for _, it := range a.Items {
			if strings.EqualFold(it.Name, n) {
				columns = append(columns, it.Name)
			}
		}
	}
	if columns == nil {
		columns = []string{}
	}
	id := alertID{a.Name, al.Name}
	after := e.after[id]
	where := al.Where
	if after != "" {
		where = "(" + al.Where + ") AND instance_id > '" + strings.ReplaceAll(after, "'", "''") + "'"
	}
	q, err := search.Prepare(a, search.Spec{Where: where, Columns: columns})
	if err != nil {
		return evaluation{}, err
	}
	page, err := search.Run(ctx, e.st, q, search.PageRequest{Limit: e.cfg.MaxKeys, Now: time.Now()})
	if err != nil {
		return evaluation{}, err
	}
	ev := evaluation{holds: map[string]map[string]string{}, from: after}
	for _, row := range page.Rows {
		fields := map[string]string{"instance": row.ID}
		for i, c := range q.Columns {
			fields[c.Name] = valueText(row.Values[i])
		}
		ev.holds[row.ID] = fields
	}
	last := ""
	if page.Next != "" && len(page.Rows) > 0 {
		last = page.Rows[len(page.Rows)-1].ID
	}
	// Instance ids compare by bytes, in SQL (COLLATE "C") as in Go.
	ev.judged = func(key string) bool { return key > after && (last == "" || key <= last) }
	if last != "" && after == "" {
		e.log.Info("alert matches more instances than a round reads; the next rounds read on",
			"activity", a.Name, "alert", al.Name, "per_round", e.cfg.MaxKeys)
	}
	e.after[id] = last
	return ev, nil
}

// cellPass is a reading of an aggregate alert's cells over rounds: the
// offset of the next page, and every cell read since the first page.
type cellPass struct {
	offset int
	seen   map[string]bool
}

// evaluateCells reads a page of an aggregate alert's cells, MaxKeys of
// them after those the last rounds read: its keys are those whose measure
// crosses the threshold. A round judges the cells it read; the round that
// reads the last page judges too the open cells no page of the pass held,
// which are gone (no instance is in them any more).
func (e *Evaluator) evaluateCells(ctx context.Context, a definition.Activity, al definition.Alert) (evaluation, error) {
	id := alertID{a.Name, al.Name}
	pass := e.cells[id]
	if pass == nil {
		pass = &cellPass{seen: map[string]bool{}}
		e.cells[id] = pass
	}
	q := store.AggregationQuery{State: al.StateName(), Limit: e.cfg.MaxKeys, Offset: pass.offset}
	if al.Where != "" {
		sq, err := search.Prepare(a, search.Spec{Where: al.Where, Columns: []string{}})
		if err != nil {
			return evaluation{}, err
		}
		d, err := search.DialectFor(ctx, e.st)
		if err != nil {
			return evaluation{}, err
		}
		q.Of = sq.Selection(d, time.Now())
	}
	res, err := e.st.Aggregation(ctx, a.Name, al.Aggregation, q)
	if err != nil {
		return evaluation{}, err
	}
	measure, instances := -1, -1
	for i, c := range res.Columns {
		if c.Name == al.MeasureName() {
			measure = i
		}
		if c.Name == "instances" {
			instances = i
		}
	}
	if measure < 0 || instances < 0 {
		return evaluation{}, fmt.Errorf("aggregation %s has no column %s", res.Aggregation.Name, al.MeasureName())
	}
	ev := evaluation{holds: map[string]map[string]string{}}
	read := map[string]bool{}
	for _, row := range res.Rows {
		cell := map[string]any{}
		for i := 1; i < instances; i++ {
			if row[i] == nil {
				cell[res.Columns[i].Name] = nil
			} else {
				cell[res.Columns[i].Name] = *row[i]
			}
		}
		k, _ := json.Marshal(cell) // keys sorted: the same cell, the same key
		key := string(k)
		read[key], pass.seen[key] = true, true
		if row[measure] == nil {
			continue
		}
		v, err := strconv.ParseFloat(*row[measure], 64)
		if err != nil || !al.Crosses(v) {
			continue
		}
		fields := map[string]string{"value": *row[measure], "measure": al.MeasureName(), "state": al.StateName()}
		if al.Above != nil {
			fields["threshold"] = strconv.FormatFloat(*al.Above, 'g', -1, 64)
		} else {
			fields["threshold"] = strconv.FormatFloat(*al.Below, 'g', -1, 64)
		}
		for name, v := range cell {
			if v == nil {
				fields[name] = ""
			} else {
				fields[name] = v.(string)
			}
		}
		ev.holds[key] = fields
	}
	if res.More {
		pass.offset += len(res.Rows)
		ev.judged = func(key string) bool { return read[key] }
		return ev, nil
	}
	seen := pass.seen
	e.cells[id] = nil // the next round reads from the first cell again
	ev.judged = func(key string) bool { return read[key] || !seen[key] }
	return ev, nil
}

// valueText writes a search row's value for a message.
func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// link is the portal page of a firing of al, or "": the instance, or the
// aggregation.
func (e *Evaluator) link(f store.Firing, al definition.Alert) string {
	if e.cfg.Link == "" {
		return ""
	}
	base := strings.TrimRight(e.cfg.Link, "/") + "/activities/" + url.PathEscape(f.Activity)
	if al.IsAggregate() {
		return base + "/aggregations/" + url.PathEscape(al.Aggregation)
	}
	return base + "/instances/" + url.PathEscape(f.Key)
}
