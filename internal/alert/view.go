package alert

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/suggest"
)

// What `bam alert` and the HTTP API (/v1/alerts) show of the alerts, in
// one shape.

// AlertJSON is a deployed alert and its state.
type AlertJSON struct {
	Activity    string           `json:"activity"`
	Name        string           `json:"name"`
	Kind        string           `json:"kind"` // instance or aggregate
	Condition   string           `json:"condition"`
	Where       string           `json:"where,omitempty"`
	Aggregation string           `json:"aggregation,omitempty"`
	State       string           `json:"state,omitempty"`
	Measure     string           `json:"measure,omitempty"`
	Above       *float64         `json:"above,omitempty"`
	Below       *float64         `json:"below,omitempty"`
	Message     string           `json:"message"`
	Severity    string           `json:"severity"`
	Subscribers []SubscriberJSON `json:"subscribers"`
	// Open counts the keys it holds for now: its open firings.
	Open int `json:"open"`
	// LastFiredAt is when it last fired; null if never (in the kept
	// history).
	LastFiredAt *time.Time `json:"last_fired_at"`
}

// SubscriberJSON is where an alert is delivered.
type SubscriberJSON struct {
	Channel string `json:"channel"` // webhook or email
	// Target is the webhook's URL without its query, or the address.
	Target    string `json:"target"`
	SecretEnv string `json:"secret_env,omitempty"`
}

// FiringJSON is a firing and its deliveries.
type FiringJSON struct {
	ID         int64          `json:"id"`
	Activity   string         `json:"activity"`
	Alert      string         `json:"alert"`
	Key        string         `json:"key"`
	Severity   string         `json:"severity"`
	Message    string         `json:"message"`
	Value      string         `json:"value,omitempty"`
	FiredAt    time.Time      `json:"fired_at"`
	ClearedAt  *time.Time     `json:"cleared_at"`
	Node       string         `json:"node"`
	Epoch      int64          `json:"epoch"`
	Deliveries []DeliveryJSON `json:"deliveries"`
}

// DeliveryJSON is a delivery of a firing.
type DeliveryJSON struct {
	ID          string     `json:"id"`
	Channel     string     `json:"channel"`
	Target      string     `json:"target"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAt      *time.Time `json:"next_attempt_at,omitempty"` // pending only
	LastError   string     `json:"last_error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// NewAlertJSON describes al of activity a, with its open firings.
func NewAlertJSON(a string, al definition.Alert, open int, lastFired *time.Time) AlertJSON {
	j := AlertJSON{Activity: a, Name: al.Name, Kind: "instance", Condition: al.Condition(), Where: al.Where,
		Message: al.Message, Severity: string(al.SeverityName()), Subscribers: []SubscriberJSON{}, Open: open, LastFiredAt: lastFired}
	if j.Message == "" {
		j.Message = DefaultMessage(al)
	}
	if al.IsAggregate() {
		j.Kind, j.Aggregation, j.State, j.Measure, j.Above, j.Below = "aggregate", al.Aggregation, al.StateName(), al.MeasureName(), al.Above, al.Below
	}
	for _, s := range al.Subscribers {
		sj := SubscriberJSON{Channel: store.ChannelEmail, Target: s.Target()}
		if s.Webhook != "" {
			sj.Channel, sj.SecretEnv = store.ChannelWebhook, s.SecretEnv
		}
		j.Subscribers = append(j.Subscribers, sj)
	}
	return j
}

// NewFiringJSON describes a firing; webhook targets lose their query.
func NewFiringJSON(f store.Firing) FiringJSON {
	j := FiringJSON{ID: f.ID, Activity: f.Activity, Alert: f.Alert, Key: f.Key, Severity: f.Severity, Message: f.Message, Value: f.Value,
		FiredAt: f.FiredAt.UTC(), ClearedAt: utc(f.ClearedAt), Node: f.Node, Epoch: f.Epoch, Deliveries: []DeliveryJSON{}}
	for _, d := range f.Deliveries {
		dj := DeliveryJSON{ID: d.ID, Channel: d.Channel, Target: d.Target, State: string(d.State), Attempts: d.Attempts,
			LastError: d.LastError, DeliveredAt: utc(d.DeliveredAt)}
		if d.Channel == store.ChannelWebhook {
			dj.Target = definition.Redacted(d.Target)
		}
		if d.State == store.DeliveryPending {
			dj.NextAt = utc(&d.NextAt)
		}
		j.Deliveries = append(j.Deliveries, dj)
	}
	return j
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// DeliveriesSummary says how a firing's deliveries stand, for a table: "2
// delivered, 1 pending".
func (f FiringJSON) DeliveriesSummary() string {
	if len(f.Deliveries) == 0 {
		return "none"
	}
	counts := map[string]int{}
	for _, d := range f.Deliveries {
		counts[d.State]++
	}
	var parts []string
	for _, s := range []store.DeliveryState{store.DeliveryDelivered, store.DeliveryPending, store.DeliveryFailed} {
		if n := counts[string(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

// Reader is what List and Find read.
type Reader interface {
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	store.AlertStore
}

// List describes every deployed alert, by activity, in the order of the
// definitions, with how many firings each has open and when it last
// fired.
func List(ctx context.Context, st Reader) ([]AlertJSON, error) {
	acts, _, err := st.Definitions(ctx)
	if err != nil {
		return nil, err
	}
	out := []AlertJSON{}
	for _, a := range acts {
		for _, al := range a.Alerts {
			open, last, err := st.AlertSummary(ctx, a.Name, al.Name)
			if err != nil {
				return nil, err
			}
			out = append(out, NewAlertJSON(a.Name, al, int(open), utc(last)))
		}
	}
	return out, nil
}

// Find returns the deployed alert that name names, ACTIVITY.ALERT or, when
// only one activity has an alert so named, ALERT; names match in any case.
// Its error names the closest alert.
func Find(ctx context.Context, st interface {
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
}, name string) (definition.Activity, definition.Alert, error) {
	acts, _, err := st.Definitions(ctx)
	if err != nil {
		return definition.Activity{}, definition.Alert{}, err
	}
	actName, alName, qualified := strings.Cut(name, ".")
	if !qualified {
		actName, alName = "", name
	}
	var (
		all     []string
		matches []store.DeployedActivity
		found   definition.Alert
	)
	for _, a := range acts {
		for _, al := range a.Alerts {
			all = append(all, a.Name+"."+al.Name)
			if strings.EqualFold(al.Name, alName) && (actName == "" || strings.EqualFold(a.Name, actName)) {
				matches = append(matches, a)
				found = al
			}
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0].Activity, found, nil
	case len(matches) > 1:
		var names []string
		for _, a := range matches {
			names = append(names, a.Name+"."+found.Name)
		}
		return definition.Activity{}, definition.Alert{}, fmt.Errorf("alert %q: several activities have one (%s); name it ACTIVITY.ALERT", name, strings.Join(names, ", "))
	case len(all) == 0:
		return definition.Activity{}, definition.Alert{}, fmt.Errorf("alert %q: %w (no alerts are deployed; declare them under alerts: in a definition file and bam deploy it)", name, store.ErrNotFound)
	}
	return definition.Activity{}, definition.Alert{}, fmt.Errorf("alert %q: %w%s", name, store.ErrNotFound, suggest.DidYouMean(name, all))
}

// DetailJSON is an alert with its open and latest firings, and the node
// that evaluates the alerts.
type DetailJSON struct {
	AlertJSON
	// Evaluator is the id of the node that owns the alerts session now;
	// "" when no node does (no bam serve runs, or its lease expired).
	Evaluator   string       `json:"evaluator"`
	OpenFirings []FiringJSON `json:"open_firings"`
	// MoreOpen: more firings are open than OpenFirings lists.
	MoreOpen bool         `json:"more_open_firings"`
	Recent   []FiringJSON `json:"recent_firings"`
}

// DetailReader is what Detail reads.
type DetailReader interface {
	Reader
	Sessions(ctx context.Context) ([]store.SessionRow, error)
}

// Detail describes the alert that name names (Find), with at most
// openShown of its open firings and its recent latest firings (0: none
// read).
func Detail(ctx context.Context, st DetailReader, name string, openShown, recent int) (DetailJSON, error) {
	act, al, err := Find(ctx, st, name)
	if err != nil {
		return DetailJSON{}, err
	}
	out := DetailJSON{OpenFirings: []FiringJSON{}, Recent: []FiringJSON{}}
	if openShown > 0 {
		open, err := st.AlertHistory(ctx, store.AlertHistoryQuery{Activity: act.Name, Alert: al.Name, OpenOnly: true, Limit: openShown + 1})
		if err != nil {
			return DetailJSON{}, err
		}
		if len(open) > openShown {
			open, out.MoreOpen = open[:openShown], true
		}
		for _, f := range open {
			out.OpenFirings = append(out.OpenFirings, NewFiringJSON(f))
		}
	}
	if recent > 0 {
		latest, err := st.AlertHistory(ctx, store.AlertHistoryQuery{Activity: act.Name, Alert: al.Name, Limit: recent})
		if err != nil {
			return DetailJSON{}, err
		}
		for _, f := range latest {
			out.Recent = append(out.Recent, NewFiringJSON(f))
		}
	}
	n, last, err := st.AlertSummary(ctx, act.Name, al.Name)
	if err != nil {
		return DetailJSON{}, err
	}
	out.AlertJSON = NewAlertJSON(act.Name, al, int(n), utc(last))
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return DetailJSON{}, err
	}
	for _, se := range sessions {
		if se.Source == store.AlertsSource && se.Owner != "" && se.LeaseRemaining > 0 {
			out.Evaluator = se.Owner
		}
	}
	return out, nil
}
