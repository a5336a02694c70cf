package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
)

const alertFile = `activities:
  - name: Order
    items:
      - {name: Customer, type: text, max_length: 40}
      - {name: Amount,   type: integer}
    alerts:
      - name: Big
        where: WHERE
        message: "{Customer}: {Amount}"
        severity: critical
        subscribers:
          - {webhook: "@HOOK@", secret_env: ORDER_HOOK_SECRET}
          - {email: ops@example.com}
`

func TestAlertCommands(t *testing.T) {
	b := migrated(t)
	hook := notifytest.NewWebhookReceiver(t, []byte("s3cret"))
	mail := notifytest.NewSMTPServer(t)
	file := filepath.Join(b.dir, "alerts.yaml")
	write := func(where string) {
		writeFile(t, file, strings.NewReplacer("WHERE", where, "@HOOK@", hook.URL()).Replace(alertFile))
	}

	// A filter that does not check against the activity deploys nothing.
	write(`"Amout > 1000"`)
	b.fails(exitError, "", []string{"deploy", file}, `alert "Big": where: filter: at 1: "Amout" is no item of activity Order`, "did you mean Amount?")
	if r := b.ok("alert", "list"); !strings.HasPrefix(r.stdout, "no alerts deployed") {
		t.Errorf("alert list before a deployment: %q", r.stdout)
	}

	write(`"Amount > 1000"`)
	if r := b.ok("deploy", file); !strings.Contains(r.stdout, "add alert Order.Big") || !strings.Contains(r.stdout, "alerts: evaluated by the session bam.alerts/0") {
		t.Errorf("deploy printed:\n%s", r.stdout)
	}
	r := b.ok("alert", "list")
	for _, want := range []string{"Order.Big", "instance", "critical", "Amount > 1000", hook.URL(), "ops@example.com"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("alert list does not say %q:\n%s", want, r.stdout)
		}
	}
	r = b.ok("alert", "show", "big")
	for _, want := range []string{"alert Order.Big (instance, critical)", "message:    {Customer}: {Amount}", "evaluated:  by no node now"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("alert show does not say %q:\n%s", want, r.stdout)
		}
	}
	b.fails(exitError, "", []string{"alert", "show", "Order.Bg"}, `alert "Order.Bg": not found (did you mean Order.Big?)`)
	if r := b.ok("alert", "history"); r.stdout != "no firings\n" {
		t.Errorf("history: %q", r.stdout)
	}

	// bam alert test: each subscriber's outcome; exit 1 when one fails.
	r = b.fails(exitError, "", []string{"alert", "test", "Order.Big"}, "2 of 2 test deliveries failed")
	if !strings.Contains(r.stdout, "ORDER_HOOK_SECRET is not set") || !strings.Contains(r.stdout, "has no SMTP server") {
		t.Errorf("alert test without secret nor SMTP:\n%s", r.stdout)
	}
	b.env["ORDER_HOOK_SECRET"] = "s3cret"
	r = b.ok("alert", "test", "Order.Big", "--smtp", mail.Addr(), "--smtp-from", "bam@example.com", "--key", "PO-1")
	if strings.Count(r.stdout, ": delivered (id bam-test-") != 2 {
		t.Errorf("alert test:\n%s", r.stdout)
	}
	got := hook.Received()
	if len(got) != 1 || !got[0].SignatureValid || !got[0].Message.Test || got[0].Message.Key != "PO-1" || got[0].Message.Alert != "Big" {
		t.Errorf("webhook got %+v", got)
	}
	if m := mail.Messages(); len(m) != 1 || !strings.Contains(m[0].Header.Get("Subject"), "Order.Big") {
		t.Errorf("mail got %+v", m)
	}
	b.fails(exitUsage, "", []string{"alert", "test", "Order.Big", "--smtp", mail.Addr()}, "--smtp needs --smtp-from")
	b.fails(exitUsage, "", []string{"alert", "history", "--limit", "0"}, "--limit 0")

	// The alerts' session stays while alerts are deployed.
	b.fails(exitError, "", []string{"source", "remove", "bam.alerts"}, "its session evaluates the alerts, and activity Order has some", "bam source pause bam.alerts")
	b.ok("source", "pause", "bam.alerts")
	b.ok("source", "resume", "bam.alerts")
}
