package definition

import (
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Limits of alerts; see the package comment.
const (
	MaxAlerts       = 64
	MaxSubscribers  = 16
	MaxAlertMessage = 2000
	MaxAlertFilter  = 4000
)

// Severity is how urgent an alert is.
type Severity string

// The severities; an alert without one is a warning.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

var severities = []Severity{Info, Warning, Critical}

// Alert is a condition on an activity that notifies its subscribers when it
// becomes true, and again only after it was false in between (package
// alert). It is one of two kinds:
//
//   - an instance alert (Where alone): each instance that starts matching
//     the filter fires once;
//   - an aggregate alert (Aggregation): each cell of the aggregation whose
//     Measure goes above Above (or below Below) fires once; Where, when
//     set, computes the cells from the instances it matches only.
type Alert struct {
	Name        string       `yaml:"name" json:"name"`
	Where       string       `yaml:"where,omitempty" json:"where,omitempty"`
	Aggregation string       `yaml:"aggregation,omitempty" json:"aggregation,omitempty"`
	State       string       `yaml:"state,omitempty" json:"state,omitempty"`     // aggregate: active, completed or all (the default)
	Measure     string       `yaml:"measure,omitempty" json:"measure,omitempty"` // aggregate: a measure's name, or instances (the default)
	Above       *float64     `yaml:"above,omitempty" json:"above,omitempty"`
	Below       *float64     `yaml:"below,omitempty" json:"below,omitempty"`
	Message     string       `yaml:"message,omitempty" json:"message,omitempty"`
	Severity    Severity     `yaml:"severity,omitempty" json:"severity,omitempty"`
	Subscribers []Subscriber `yaml:"subscribers,omitempty" json:"subscribers,omitempty"`
	line        int
}

// Subscriber is where an alert's firings are delivered: a webhook (signed
// with the secret held by the environment variable SecretEnv of the node
// that delivers, when set) or an email address.
type Subscriber struct {
	Webhook   string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	SecretEnv string `yaml:"secret_env,omitempty" json:"secret_env,omitempty"`
	Email     string `yaml:"email,omitempty" json:"email,omitempty"`
}

// IsAggregate reports whether the alert watches an aggregation's cells.
func (al Alert) IsAggregate() bool { return al.Aggregation != "" }

// AlertStates are the states an aggregate alert may watch.
var AlertStates = []string{"all", "active", "completed"}

// Condition says, for people, when the alert fires: "Amount > 10000" or
// "ByCustomer.orders > 100 (active)".
func (al Alert) Condition() string {
	if !al.IsAggregate() {
		return al.Where
	}
	c := al.Aggregation + "." + al.MeasureName()
	switch {
	case al.Above != nil:
		c += " > " + formatNumber(*al.Above)
	case al.Below != nil:
		c += " < " + formatNumber(*al.Below)
	}
	if st := al.StateName(); st != "all" {
		c += " (" + st + ")"
	}
	if al.Where != "" {
		c += " of " + al.Where
	}
	return c
}

// MeasureName is the aggregate alert's measure column, in lower case.
func (al Alert) MeasureName() string {
	if al.Measure == "" {
		return "instances"
	}
	return strings.ToLower(al.Measure)
}

// StateName is the state of the cells an aggregate alert watches.
func (al Alert) StateName() string {
	if al.State == "" {
		return "all"
	}
	return strings.ToLower(al.State)
}

// SeverityName is the alert's severity, warning when not set.
func (al Alert) SeverityName() Severity {
	if al.Severity == "" {
		return Warning
	}
	return al.Severity
}

// Crosses reports whether an aggregate alert's condition holds for v.
func (al Alert) Crosses(v float64) bool {
	switch {
	case math.IsNaN(v):
		return false
	case al.Above != nil:
		return v > *al.Above
	case al.Below != nil:
		return v < *al.Below
	}
	return false
}

func formatNumber(f float64) string { return fmt.Sprint(f) }

// Alert returns a's alert named name in any case.
func (a Activity) Alert(name string) (Alert, bool) {
	for _, al := range a.Alerts {
		if strings.EqualFold(al.Name, name) {
			return al, true
		}
	}
	return Alert{}, false
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkAlerts checks a's alerts against its items and aggregations. The
// filters are parsed and checked by package alert (alert.Check), which
// knows the filter language.
func (a *Activity) checkAlerts(add func(item string, line int, format string, args ...any)) {
	if len(a.Alerts) > MaxAlerts {
		add("", a.line, "%d alerts, more than the limit of %d", len(a.Alerts), MaxAlerts)
	}
	names := map[string]int{}
	for i := range a.Alerts {
		al := &a.Alerts[i]
		problem := func(format string, args ...any) {
			add("", al.line, "alert %q: %s", al.Name, fmt.Sprintf(format, args...))
		}
		if reason := checkName(al.Name, MaxItemName); reason != "" {
			problem("name %s", reason)
		} else if prev, dup := names[strings.ToLower(al.Name)]; dup {
			problem("defined twice in the activity (also on line %d; names are compared without regard to case)", prev)
		} else {
			names[strings.ToLower(al.Name)] = al.line
		}
		if al.Severity != "" && !slices.Contains(severities, al.Severity) {
			problem("unknown severity %q (one of info, warning, critical)", al.Severity)
		}
		if len(al.Message) > MaxAlertMessage {
			problem("message is %d bytes, more than the limit of %d", len(al.Message), MaxAlertMessage)
		}
		if len(al.Where) > MaxAlertFilter {
			problem("where is %d bytes, more than the limit of %d", len(al.Where), MaxAlertFilter)
		}
		if al.IsAggregate() {
			a.checkAggregateAlert(*al, problem)
		} else {
			switch {
			case strings.TrimSpace(al.Where) == "":
				problem("an alert needs where: (an instance alert: each instance that starts matching fires) or aggregation: (a threshold on an aggregation's cells)")
			case al.State != "" || al.Measure != "" || al.Above != nil || al.Below != nil:
				problem("state, measure, above and below belong to aggregate alerts (with aggregation:); an instance alert says everything in where:")
			}
		}
		if len(al.Subscribers) > MaxSubscribers {
			problem("%d subscribers, more than the limit of %d", len(al.Subscribers), MaxSubscribers)
		}
		for j, s := range al.Subscribers {
			for _, reason := range s.check() {
				problem("subscriber %d: %s", j+1, reason)
			}
		}
	}
}

func (a *Activity) checkAggregateAlert(al Alert, problem func(format string, args ...any)) {
	g, ok := a.Aggregation(al.Aggregation)
	if !ok {
		var names []string
		for _, g := range a.Aggregations {
			names = append(names, g.Name)
		}
		if len(names) == 0 {
			problem("aggregation %q: the activity has no aggregations", al.Aggregation)
		} else {
			problem("aggregation %q: no such aggregation (the activity has %s)", al.Aggregation, strings.Join(names, ", "))
		}
	}
	if !slices.Contains(AlertStates, al.StateName()) {
		problem("state %q: watch active, completed or all cells", al.State)
	}
	if ok && al.Measure != "" && !strings.EqualFold(al.Measure, "instances") {
		found := false
		var names []string
		for _, m := range g.Measures {
			names = append(names, m.Name)
			found = found || strings.EqualFold(m.Name, al.Measure)
		}
		if !found {
			problem("measure %q: %s has no such measure (it has instances%s)", al.Measure, g.Name, prefixed(", ", names))
		}
	}
	if (al.Above == nil) == (al.Below == nil) {
		problem("an aggregate alert needs exactly one of above: or below: (the threshold its measure crosses)")
	}
	for _, t := range []*float64{al.Above, al.Below} {
		if t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0)) {
			problem("the threshold must be a finite number")
		}
	}
}

func prefixed(sep string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	return sep + strings.Join(names, sep)
}

func (s Subscriber) check() []string {
	var out []string
	switch {
	case s.Webhook != "" && s.Email != "":
		return []string{"give either webhook: or email:, not both (list two subscribers)"}
	case s.Webhook == "" && s.Email == "":
		return []string{"give webhook: (a URL) or email: (an address)"}
	case s.Webhook != "":
		u, err := url.Parse(s.Webhook)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("webhook is not a URL: %v", err))
		case u.Scheme != "http" && u.Scheme != "https":
			out = append(out, fmt.Sprintf("webhook %q: use an http:// or https:// URL", Redacted(s.Webhook)))
		case u.Host == "":
			out = append(out, fmt.Sprintf("webhook %q has no host", Redacted(s.Webhook)))
		case u.User != nil:
			out = append(out, "webhook: put no user or password in the URL; sign with secret_env instead")
		case u.RawQuery == hiddenQuery || u.Query().Has(hiddenQuery):
			// A file exported from the store shows a webhook's query so;
			// deployed back, its deliveries would lose their token.
			out = append(out, fmt.Sprintf("webhook %q: its query was hidden (?%s) where bam showed it; give the whole URL, with its token", Redacted(s.Webhook), hiddenQuery))
		}
	default:
		if s.SecretEnv != "" {
			out = append(out, "secret_env signs webhooks; an email has none")
		}
		if addr, err := mail.ParseAddress(s.Email); err != nil || addr.Name != "" {
			out = append(out, fmt.Sprintf("email %q is not one plain address (name@example.com)", s.Email))
		}
	}
	if s.SecretEnv != "" && !envName.MatchString(s.SecretEnv) {
		out = append(out, fmt.Sprintf("secret_env %q is not an environment variable name", s.SecretEnv))
	}
	return out
}

// Target is where the subscriber is delivered, for people: the webhook's
// URL without its query (it may hold a token), or the email address.
func (s Subscriber) Target() string {
	if s.Webhook != "" {
		return Redacted(s.Webhook)
	}
	return s.Email
}

// hiddenQuery stands for a URL's query where Redacted hides it.
const hiddenQuery = "…"

// Redacted is a URL without its query, fragment or password, for logs and
// listings: a webhook URL may carry a token.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = hiddenQuery
	}
	u.Fragment = ""
	return u.String()
}

// WebhooksRedacted returns the activity with its webhooks' URLs as
// Redacted shows them, for a file that is shown (an export) rather than
// deployed; the activity itself is left as it is.
func (a Activity) WebhooksRedacted() Activity {
	alerts := slices.Clone(a.Alerts)
	for i := range alerts {
		alerts[i].Subscribers = slices.Clone(alerts[i].Subscribers)
		for j, sub := range alerts[i].Subscribers {
			if sub.Webhook != "" {
				alerts[i].Subscribers[j].Webhook = Redacted(sub.Webhook)
			}
		}
	}
	a.Alerts = alerts
	return a
}

// urlInText finds the http and https URLs in a text: from the scheme to a
// space or a quote.
var urlInText = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>` + "`" + `]+`)

// RedactedText is a text, such as a definition file as it was deployed,
// with every http and https URL in it shown as Redacted shows it (when it
// has a query, fragment or user): a listing of the files deployed must
// not show a webhook's token any more than a listing of the alerts does.
// The commas and closing brackets that end a URL are left as they are: in
// a YAML flow mapping ({webhook: https://..., secret_env: X}) they are the
// file's.
func RedactedText(text string) string {
	return urlInText.ReplaceAllStringFunc(text, func(found string) string {
		u := strings.TrimRight(found, ",]}")
		if !strings.ContainsAny(u, "?#@") {
			return found
		}
		return Redacted(u) + found[len(u):]
	})
}

// planAlerts lists the alerts a deployment of next over old adds, changes
// and removes. An alert's firings live on through a change: the next
// evaluation clears those its new condition no longer holds for.
func planAlerts(old, next Activity) []Change {
	var out []Change
	for _, al := range next.Alerts {
		prev, ok := old.Alert(al.Name)
		prev.line, al.line = 0, 0
		switch {
		case !ok:
			out = append(out, Change{Kind: AddAlert, Activity: next.Name, Item: al.Name})
		case !reflect.DeepEqual(prev, al):
			out = append(out, Change{Kind: ChangeAlert, Activity: next.Name, Item: al.Name})
		}
	}
	for _, al := range old.Alerts {
		if _, kept := next.Alert(al.Name); !kept {
			out = append(out, Change{Kind: RemoveAlert, Activity: next.Name, Item: al.Name})
		}
	}
	return out
}
