package alert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// Sender makes one attempt of a delivery: webhooks signed with the secret
// in the delivering node's environment, emails through its SMTP server
// (package notify).
type Sender struct {
	Webhook *notify.Webhook
	// Mailer is nil on a node without an SMTP server: its email
	// deliveries wait for an owner that has one (or for GiveUpAfter).
	Mailer *notify.Mailer
	// Getenv reads a secret's environment variable; nil: os.Getenv.
	Getenv func(string) string
	// Node names this node in what a failed attempt says.
	Node string
}

// errNotHere is a failure this node alone may have (no SMTP server, a
// secret not set): retried, never final before GiveUpAfter.
var errNotHere = errors.New("not deliverable from this node")

// Send makes one attempt of d, carrying m.
func (s Sender) Send(ctx context.Context, d store.Delivery, m notify.Message) error {
	switch d.Channel {
	case store.ChannelWebhook:
		var secret []byte
		if d.SecretEnv != "" {
			getenv := s.Getenv
			if getenv == nil {
				getenv = os.Getenv
			}
			v := getenv(d.SecretEnv)
			if v == "" {
				return fmt.Errorf("%w: the webhook's secret_env %s is not set on node %s", errNotHere, d.SecretEnv, s.Node)
			}
			secret = []byte(v)
		}
		w := s.Webhook
		if w == nil {
			w = &notify.Webhook{}
		}
		return w.Send(ctx, d.Target, secret, m)
	case store.ChannelEmail:
		if s.Mailer == nil {
			return fmt.Errorf("%w: node %s has no SMTP server (bam serve --smtp)", errNotHere, s.Node)
		}
		return s.Mailer.Send(ctx, d.Target, m)
	}
	return fmt.Errorf("%w: unknown channel %q", notify.ErrPermanent, d.Channel)
}

// Message is what a delivery of f carries.
func Message(d store.Delivery, f store.Firing, link string) notify.Message {
	return notify.Message{DeliveryID: d.ID, FiringID: f.ID, Activity: f.Activity, Alert: f.Alert, Severity: f.Severity,
		Key: f.Key, Message: f.Message, Value: f.Value, FiredAt: f.FiredAt, Link: link}
}

// deliveryBatch bounds the deliveries read at once, and deliveryWorkers
// how many are sent at once: a slow receiver holds up only its own.
const (
	deliveryBatch   = 64
	deliveryWorkers = 4
)

// deliverLoop sends the due deliveries every DeliveryPoll, until ctx ends
// or the evaluator is stopped (the attempts in hand finish first).
func (e *Evaluator) deliverLoop(ctx context.Context) {
	ticker := time.NewTicker(e.cfg.DeliveryPoll)
	defer ticker.Stop()
	for {
		for !e.stopping() && ctx.Err() == nil {
			n, err := e.deliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("alert deliveries: cannot read or record them; retrying", "err", err)
			}
			if err != nil || n < deliveryBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.stop:
			return
		case <-ticker.C:
		}
	}
}

// deliverDue makes one attempt of up to deliveryBatch due deliveries and
// records each; it returns how many it read.
func (e *Evaluator) deliverDue(ctx context.Context) (int, error) {
	due, err := e.st.DueDeliveries(ctx, deliveryBatch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	acts, _, err := e.st.Definitions(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the definitions: %w", err)
	}
	alerts := map[alertID]definition.Alert{}
	for _, a := range acts {
		for _, al := range a.Alerts {
			alerts[alertID{a.Name, al.Name}] = al
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan store.DueDelivery)
	)
	for range min(deliveryWorkers, len(due)) {
		wg.Go(func() {
			for d := range next {
				link := ""
				if al, ok := alerts[alertID{d.Firing.Activity, d.Firing.Alert}]; ok {
					link = e.link(d.Firing, al)
				}
				res := e.attempt(ctx, d, link)
				if ctx.Err() != nil {
					return // cut short: the next owner makes the attempt again
				}
				if err := e.st.RecordDelivery(ctx, d.ID, res); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, d := range due {
		select {
		case next <- d:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return len(due), first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// attempt sends d once and says what to record.
func (e *Evaluator) attempt(ctx context.Context, d store.DueDelivery, link string) store.DeliveryResult {
	err := e.cfg.Send.Send(ctx, d.Delivery, Message(d.Delivery, d.Firing, link))
	attrs := []any{"activity", d.Firing.Activity, "alert", d.Firing.Alert, "key", d.Firing.Key,
		"delivery", d.ID, "channel", d.Channel, "target", definition.Redacted(d.Target), "attempt", d.Attempts + 1}
	if err == nil {
		e.log.Info("alert delivered", attrs...)
		return store.DeliveryResult{Delivered: true}
	}
	msg := err.Error()
	if errors.Is(err, notify.ErrPermanent) {
		e.log.Warn("alert delivery failed for good", append(attrs, "err", msg)...)
		return store.DeliveryResult{Failed: true, Error: msg}
	}
	if age := time.Since(d.Firing.FiredAt); age > e.cfg.GiveUpAfter {
		msg = fmt.Sprintf("gave up %s after the firing: %s", age.Round(time.Minute), msg)
		e.log.Warn("alert delivery failed for good", append(attrs, "err", msg)...)
		return store.DeliveryResult{Failed: true, Error: msg}
	}
	wait := min(e.cfg.RetryBase<<min(d.Attempts, 20), e.cfg.RetryMax)
	var ra *notify.RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		wait = min(ra.After, time.Hour)
	}
	e.log.Warn("alert delivery failed; retrying", append(attrs, "err", msg, "retry_in", wait)...)
	return store.DeliveryResult{Error: strings.TrimSpace(msg), RetryIn: wait}
}
