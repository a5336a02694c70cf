package main

// bam alert: the deployed alerts, their firings and deliveries
// (internal/alert), and a test delivery to their subscribers.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) alertCommand() *cobra.Command {
	return group("alert", "Show the deployed alerts, their firings and deliveries; send a test",
		a.alertListCommand(),
		a.alertShowCommand(),
		a.alertHistoryCommand(),
		a.alertTestCommand(),
	)
}

// withAlerts runs fn on the store's alerts.
func (a *app) withAlerts(ctx context.Context, fn func(as alert.DetailReader) error) error {
	return a.withStore(ctx, func(st store.Store) error {
		as, ok := st.(alert.DetailReader)
		if !ok {
			return fmt.Errorf("the %s store keeps no alerts", st.Driver())
		}
		return fn(as)
	})
}

func (a *app) alertListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the deployed alerts and how many firings each has open",
		Long: `list shows every alert of the deployed activities (docs/ALERTS.md): its kind
(instance or aggregate), severity and condition, how many keys it fires for
now (OPEN: instances, or aggregation cells), when it last fired, and where it
is delivered.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withAlerts(ctx, func(as alert.DetailReader) error {
				alerts, err := alert.List(ctx, as)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, alerts)
				}
				if len(alerts) == 0 {
					fmt.Fprintln(a.stdout, "no alerts deployed; declare them under alerts: in a definition file (docs/ALERTS.md) and bam deploy it")
					return nil
				}
				t := newTable(a.stdout, "ALERT", "KIND", "SEVERITY", "OPEN", "LAST FIRED", "CONDITION", "SUBSCRIBERS")
				for _, al := range alerts {
					t.row(al.Activity+"."+al.Name, al.Kind, al.Severity, strconv.Itoa(al.Open), formatTime(al.LastFiredAt), al.Condition, subscribersText(al.Subscribers))
				}
				return t.flush()
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func subscribersText(subs []alert.SubscriberJSON) string {
	if len(subs) == 0 {
		return "-"
	}
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Target
	}
	return strings.Join(out, ", ")
}

func (a *app) alertShowCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ACTIVITY.ALERT",
		Short: "Show an alert: its definition, the node evaluating it, its open and recent firings",
		Example: `  bam alert show PurchaseOrder.LateApproval
  bam alert show LateApproval --json`,
		Args: exactArgs("ACTIVITY.ALERT"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withAlerts(ctx, func(as alert.DetailReader) error {
				out, err := alert.Detail(ctx, as, args[0], 20, 5)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, out)
				}
				w := a.stdout
				fmt.Fprintf(w, "alert %s.%s (%s, %s)\n", out.Activity, out.Name, out.Kind, out.Severity)
				fmt.Fprintf(w, "  condition:  %s\n", out.Condition)
				fmt.Fprintf(w, "  message:    %s\n", out.Message)
				fmt.Fprintf(w, "  delivered:  %s\n", subscribersText(out.Subscribers))
				evaluator := out.Evaluator
				if evaluator == "" {
					evaluator = "no node now (is bam serve running? bam status shows the session " + store.AlertsSource + "/0)"
				} else {
					evaluator = "node " + evaluator
				}
				fmt.Fprintf(w, "  evaluated:  by %s\n", evaluator)
				fmt.Fprintf(w, "  open:       %d; last fired %s\n", out.Open, formatTime(out.LastFiredAt))
				if len(out.OpenFirings) > 0 {
					fmt.Fprintln(w, "\nopen firings:")
					if err := a.printFirings(out.OpenFirings); err != nil {
						return err
					}
					if out.MoreOpen {
						fmt.Fprintf(w, "… and more: bam alert history %s.%s --open\n", out.Activity, out.Name)
					}
				}
				if len(out.Recent) > 0 {
					fmt.Fprintln(w, "\nrecent firings:")
					return a.printFirings(out.Recent)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printFirings(firings []alert.FiringJSON) error {
	t := newTable(a.stdout, "ID", "FIRED", "CLEARED", "ALERT", "KEY", "DELIVERIES", "MESSAGE")
	for _, f := range firings {
		t.row(strconv.FormatInt(f.ID, 10), formatTime(&f.FiredAt), formatTime(f.ClearedAt), f.Activity+"."+f.Alert, f.Key, f.DeliveriesSummary(), f.Message)
	}
	return t.flush()
}

func (a *app) alertHistoryCommand() *cobra.Command {
	var (
		asJSON, openOnly bool
		limit            int
		before           int64
	)
	cmd := &cobra.Command{
		Use:   "history [ACTIVITY[.ALERT]]",
		Short: "List alert firings, newest first, with their deliveries",
		Long: `history lists the firings the store keeps (cleared ones for 30 days), newest
first: when each fired and cleared, for which key (an instance id, or an
aggregation cell), and how its deliveries stand. --json adds each delivery:
its id (what receivers see), attempts, last error and next attempt.`,
		Example: `  bam alert history
  bam alert history PurchaseOrder.LateApproval --open
  bam alert history PurchaseOrder --limit 500 --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("%s takes at most ACTIVITY[.ALERT], got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10_000 {
				return usageErrorf("--limit %d: use 1 to 10000", limit)
			}
			ctx := cmd.Context()
			return a.withAlerts(ctx, func(as alert.DetailReader) error {
				q := store.AlertHistoryQuery{OpenOnly: openOnly, Limit: limit, BeforeID: before}
				if len(args) == 1 {
					q.Activity, q.Alert, _ = strings.Cut(args[0], ".")
				}
				firings, err := as.AlertHistory(ctx, q)
				if err != nil {
					return err
				}
				out := make([]alert.FiringJSON, 0, len(firings))
				for _, f := range firings {
					out = append(out, alert.NewFiringJSON(f))
				}
				if asJSON {
					return printJSON(a.stdout, out)
				}
				if len(out) == 0 {
					fmt.Fprintln(a.stdout, "no firings")
					return nil
				}
				if err := a.printFirings(out); err != nil {
					return err
				}
				if len(out) == limit {
					fmt.Fprintf(a.stdout, "older firings: add --before %d\n", out[len(out)-1].ID)
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON, with each delivery")
	f.BoolVar(&openOnly, "open", false, "only the firings not cleared")
	f.IntVar(&limit, "limit", 50, "at most this many firings")
	f.Int64Var(&before, "before", 0, "only firings older than this id (paging)")
	return cmd
}

func (a *app) alertTestCommand() *cobra.Command {
	var (
		mailer notify.Mailer
		key    string
	)
	cmd := &cobra.Command{
		Use:   "test ACTIVITY.ALERT",
		Short: "Send a test delivery of an alert to each of its subscribers, from this machine",
		Long: `test sends one delivery of the alert to each subscriber, marked "test": true
(webhooks) or [test] (email), from this process, as a node would: webhooks
signed with the secret in the environment variable secret_env, emails through
--smtp (the password, if any, in BAM_SMTP_PASSWORD). Nothing is recorded in
the store. It prints each subscriber's outcome and exits 1 when one failed:
a way to check a receiver, a secret or an SMTP server before a real firing.`,
		Example: `  bam alert test PurchaseOrder.LateApproval
  BAM_SMTP_PASSWORD=… bam alert test LateApproval --smtp smtp.example.com:587 --smtp-from bam@example.com --smtp-user bam`,
		Args: exactArgs("ACTIVITY.ALERT"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			if mailer.Addr != "" && mailer.From == "" {
				return usageErrorf("--smtp needs --smtp-from ADDRESS, the sender of the email")
			}
			mailer.Password = a.getenv("BAM_SMTP_PASSWORD")
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				act, al, err := alert.Find(ctx, st, args[0])
				if err != nil {
					return err
				}
				if len(al.Subscribers) == 0 {
					return fmt.Errorf("alert %s.%s has no subscribers to test", act.Name, al.Name)
				}
				sender := alert.Sender{Webhook: &notify.Webhook{UserAgent: userAgent()}, Node: "bam alert test", Getenv: a.getenv}
				if mailer.Addr != "" {
					sender.Mailer = &mailer
				}
				failed := 0
				for i, s := range al.Subscribers {
					d := alert.DeliveryTo(s, fmt.Sprintf("bam-test-%d-%d", time.Now().UnixNano(), i+1))
					m := notify.Message{DeliveryID: d.ID, Activity: act.Name, Alert: al.Name, Severity: string(al.SeverityName()),
						Key: key, Message: "a test of alert " + act.Name + "." + al.Name + " (bam alert test): " + al.Condition(),
						FiredAt: time.Now().UTC(), Test: true}
					sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
					err := sender.Send(sctx, d, m)
					cancel()
					if err != nil {
						failed++
						how := "will be retried"
						if errors.Is(err, notify.ErrPermanent) {
							how = "permanent: a firing's delivery would fail at once"
						}
						fmt.Fprintf(a.stdout, "%-8s %s: FAILED (%s): %v\n", d.Channel, s.Target(), how, err)
						continue
					}
					fmt.Fprintf(a.stdout, "%-8s %s: delivered (id %s)\n", d.Channel, s.Target(), d.ID)
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d test deliveries failed", failed, len(al.Subscribers))
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "test", "the key the test delivery carries (an instance id, say)")
	f.StringVar(&mailer.Addr, "smtp", "", "send the email subscribers' test through this SMTP server, HOST:PORT (the password, if any, from BAM_SMTP_PASSWORD)")
	f.StringVar(&mailer.From, "smtp-from", "", "the sender of the test email")
	f.StringVar(&mailer.Username, "smtp-user", "", "log in to the SMTP server as this user")
	f.BoolVar(&mailer.RequireTLS, "smtp-require-tls", false, "refuse to send in plain text, even to a loopback server")
	return cmd
}
