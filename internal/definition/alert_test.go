package definition

import (
	"strings"
	"testing"
)

func TestAlertProblems(t *testing.T) {
	src := `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount,   type: integer}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}]
    alerts:
      - name: NoCondition
      - name: Both
        where: Amount > 1
        above: 3
      - name: NoAggregation
        aggregation: ByCustomr
        above: 1
      - name: BadMeasure
        aggregation: ByCustomer
        measure: totl
        state: open
        above: 1
        below: 2
      - name: Subscribers
        where: Amount > 1
        severity: urgent
        subscribers:
          - {webhook: "ftp://example.com/x"}
          - {webhook: "https://user:pw@example.com/x"}
          - {email: "Ops <ops@example.com>"}
          - {email: ops@example.com, secret_env: X}
          - {webhook: "https://example.com/x", secret_env: "not-a-name"}
          - {}
      - name: subscribers
        where: Amount > 2
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("parsed")
	}
	for _, want := range []string{
		`alert "NoCondition": an alert needs where:`,
		`alert "Both": state, measure, above and below belong to aggregate alerts`,
		`alert "NoAggregation": aggregation "ByCustomr": no such aggregation (the activity has ByCustomer)`,
		`alert "BadMeasure": measure "totl": ByCustomer has no such measure (it has instances, total)`,
		`alert "BadMeasure": state "open": watch active, completed or all cells`,
		`alert "BadMeasure": an aggregate alert needs exactly one of above: or below:`,
		`alert "Subscribers": unknown severity "urgent"`,
		`subscriber 1: webhook "ftp://example.com/x": use an http:// or https:// URL`,
		`subscriber 2: webhook: put no user or password in the URL`,
		`subscriber 3: email "Ops <ops@example.com>" is not one plain address`,
		`subscriber 4: secret_env signs webhooks; an email has none`,
		`subscriber 5: secret_env "not-a-name" is not an environment variable name`,
		`subscriber 6: give webhook: (a URL) or email: (an address)`,
		`alert "subscribers": defined twice in the activity`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "pw") {
		t.Errorf("a webhook's password is quoted back:\n%v", err)
	}
}

func TestAlertPlanAndCondition(t *testing.T) {
	base := `activities:
  - name: PurchaseOrder
    items:
      - {name: Customer, type: text, max_length: 100}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
`
	v1 := mustParse(t, base+`    alerts:
      - {name: Busy, aggregation: ByCustomer, state: active, above: 100}
      - {name: Acme, where: "Customer = 'acme'"}
`)
	v2 := mustParse(t, base+`    alerts:
      - {name: busy, aggregation: ByCustomer, state: active, above: 200}
      - {name: Zeta, where: "Customer = 'zeta'"}
`)
	var got []string
	for _, c := range Plan(v1, v2) {
		got = append(got, c.String())
	}
	want := []string{"change alert PurchaseOrder.busy", "add alert PurchaseOrder.Zeta", "remove alert PurchaseOrder.Acme"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("plan = %q, want %q", got, want)
	}
	if p := Plan(v1, v1); len(p) != 0 {
		t.Errorf("the same alerts plan %v", p)
	}
	busy := v1.Activities[0].Alerts[0]
	if c := busy.Condition(); c != "ByCustomer.instances > 100 (active)" {
		t.Errorf("Condition = %q", c)
	}
	if !busy.Crosses(101) || busy.Crosses(100) || busy.SeverityName() != Warning {
		t.Errorf("Crosses(101) %t, Crosses(100) %t, severity %s", busy.Crosses(101), busy.Crosses(100), busy.SeverityName())
	}
	if r := Redacted("https://u:p@example.com/hook?token=secret#x"); r != "https://example.com/hook?…" {
		t.Errorf("Redacted = %q", r)
	}
}

// TestRedactedText: a file as deployed, shown by a listing of the
// deployments, hides every URL's query, fragment and password as the
// listings of alerts do, and leaves the rest of the file as it was.
func TestRedactedText(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`- {webhook: "https://hooks.example.com/x?token=SECRET", secret_env: K}`, `- {webhook: "https://hooks.example.com/x?…", secret_env: K}`},
		{`- {webhook: https://hooks.example.com/x?token=SECRET, secret_env: K}`, `- {webhook: https://hooks.example.com/x?…, secret_env: K}`},
		{`- {webhook: https://hooks.example.com/x?token=SECRET}`, `- {webhook: https://hooks.example.com/x?…}`},
		{"webhook: 'HTTP://u:pw@h.example.com/x#SECRET'\n", "webhook: 'http://h.example.com/x'\n"},
		{`webhook: "https://h.example.com/x?a=1\u0026token=SECRET"`, `webhook: "https://h.example.com/x?…"`},
		{"# see https://docs.example.com/bam, or http://x.example.com/y\n", "# see https://docs.example.com/bam, or http://x.example.com/y\n"},
	} {
		if got := RedactedText(c.text); got != c.want {
			t.Errorf("RedactedText(%s)\n = %s\nwant %s", c.text, got, c.want)
		}
	}
}

// TestExportedWebhookIsRefused: a webhook whose query an export hid is
// refused when deployed back, rather than deployed without its token.
func TestExportedWebhookIsRefused(t *testing.T) {
	src := `activities:
  - name: PurchaseOrder
    items:
      - {name: Amount, type: integer}
    alerts:
      - name: Big
        where: Amount > 1
        subscribers:
          - {webhook: "https://hooks.example.com/x?…"}
`
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "its query was hidden") {
		t.Fatalf("Parse = %v, want the hidden query refused", err)
	}
	f, err := Parse([]byte(strings.Replace(src, "?…", "?token=SECRET", 1)))
	if err != nil {
		t.Fatal(err)
	}
	shown := f.Activities[0].WebhooksRedacted()
	if got := shown.Alerts[0].Subscribers[0].Webhook; got != "https://hooks.example.com/x?…" {
		t.Errorf("redacted webhook = %s", got)
	}
	if got := f.Activities[0].Alerts[0].Subscribers[0].Webhook; got != "https://hooks.example.com/x?token=SECRET" {
		t.Errorf("WebhooksRedacted changed the activity itself: %s", got)
	}
}
