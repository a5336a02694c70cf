package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/store"
)

// The workload's alert: an instance fires once its fifth event is
// applied, and its condition holds for ever after (check.AlertState).
// Every node evaluates it when it owns the session bam.alerts/0, so the
// faults that strike nodes strike its evaluator too; its deliveries go to
// the harness's webhook receiver, which refuses some on purpose.
const (
	alertName = "Fifth"
	// alertSecretEnv holds the webhooks' signing secret in the nodes'
	// environment.
	alertSecretEnv = "BAM_CHAOS_ALERT_SECRET"
	alertSecret    = "chaos-secret"
	// alertInterval is the nodes' --alert-interval.
	alertInterval = 500 * time.Millisecond
	// alertRefusal is the share of deliveries the receiver refuses (503),
	// so that they are retried, across evaluators; never one delivery more
	// than alertMaxRefusals times, so that its retries (5 s, 10 s, 20 s, …)
	// end within the time the harness waits for the alert to settle: five
	// refusals in a row put the sixth attempt 155 s after the firing,
	// past the 2-minute wait of a short run (a 1-in-100,000 chain per
	// delivery, which a run of 2,500 deliveries met in CI).
	alertRefusal     = 0.1
	alertMaxRefusals = 2
)

// workloadAlert is the workload's alert, delivered to hookURL.
func workloadAlert(hookURL string) string {
	return `    alerts:
      - name: ` + alertName + `
        where: e5 IS NOT EMPTY
        message: "{instance} reached its fifth event"
        subscribers:
          - {webhook: "` + hookURL + `", secret_env: ` + alertSecretEnv + `}
`
}

// receiver is the webhook receiver of the workload's alert.
type receiver struct {
	srv *http.Server
	url string

	mu       sync.Mutex
	rng      *rand.Rand
	received map[string]int
	refused  int
	refusals map[string]int // by delivery id
	bad      []string       // requests it could not take: a bad signature, no id
}

func startReceiver(seed uint64) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("alert receiver: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook", rng: rand.New(rand.NewPCG(seed, 7)), received: map[string]int{}, refusals: map[string]int{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id := req.Header.Get("X-Bam-Delivery")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil || id == "":
		r.bad = append(r.bad, fmt.Sprintf("a request without a delivery id or body (%v)", err))
		w.WriteHeader(http.StatusBadRequest)
	case !notify.Verify([]byte(alertSecret), req.Header.Get("X-Bam-Timestamp"), body, req.Header.Get("X-Bam-Signature")):
		r.bad = append(r.bad, "delivery "+id+" with a bad signature")
		w.WriteHeader(http.StatusUnauthorized)
	case r.rng.Float64() < alertRefusal && r.refusals[id] < alertMaxRefusals:
		r.refused++
		r.refusals[id]++
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		r.received[id]++
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *receiver) close() { _ = r.srv.Close() }

// settleAlert waits, up to the drain timeout, until the alert's open
// firings are exactly the instances it matches and no delivery is pending,
// then returns what the checker judges; whatever still differs then is a
// violation the checker reports.
func (h *harness) settleAlert(ctx context.Context, instances []check.Instance) (*check.AlertState, error) {
	as, ok := h.st.(store.AlertStore)
	if !ok {
		return nil, nil
	}
	var matching []string
	want := map[string]bool{}
	for _, in := range instances {
		if in.Activity == activity && len(in.Data["e5"]) > 0 && string(in.Data["e5"]) != "null" {
			matching = append(matching, in.ID)
			want[in.ID] = true
		}
	}
	deadline := time.Now().Add(h.cfg.DrainTimeout)
	var state *check.AlertState
	for {
		s, why, err := h.alertState(ctx, as, want)
		if err != nil {
			return nil, err
		}
		state = s
		if why == "" {
			h.logf("alert settled: %d firings, every delivery delivered", len(s.Firings))
			break
		}
		if time.Now().After(deadline) {
			h.logf("alert did not settle within %v: %s", h.cfg.DrainTimeout, why)
			break
		}
		if !sleepCtx(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
	state.Matching = matching
	h.alerts.mu.Lock()
	defer h.alerts.mu.Unlock()
	state.Received = make(map[string]int, len(h.alerts.received))
	for id, n := range h.alerts.received {
		state.Received[id] = n
	}
	state.Refused = h.alerts.refused
	for _, b := range h.alerts.bad {
		h.logf("alert receiver: %s", b)
	}
	return state, nil
}

// alertState reads the alert's firings and says why they are not settled
// yet ("" when they are).
func (h *harness) alertState(ctx context.Context, as store.AlertStore, want map[string]bool) (*check.AlertState, string, error) {
	s := &check.AlertState{}
	open := map[string]bool{}
	pending := 0
	before := int64(0)
	for {
		page, err := as.AlertHistory(ctx, store.AlertHistoryQuery{Activity: activity, Alert: alertName, BeforeID: before, Limit: 1000})
		if err != nil {
			return nil, "", fmt.Errorf("read the alert's firings: %w", err)
		}
		for _, f := range page {
			af := check.AlertFiring{Key: f.Key, Cleared: f.ClearedAt != nil}
			if !af.Cleared {
				open[f.Key] = true
			}
			for _, d := range f.Deliveries {
				af.Deliveries = append(af.Deliveries, check.AlertDelivery{ID: d.ID, State: string(d.State)})
				if d.State == store.DeliveryPending {
					pending++
				}
			}
			s.Firings = append(s.Firings, af)
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].ID
	}
	missing := 0
	for id := range want {
		if !open[id] {
			missing++
		}
	}
	switch {
	case missing > 0:
		return s, fmt.Sprintf("%d of %d matching instances have no open firing", missing, len(want)), nil
	case len(open) != len(want):
		return s, fmt.Sprintf("%d open firings for %d matching instances", len(open), len(want)), nil
	case pending > 0:
		return s, fmt.Sprintf("%d deliveries pending", pending), nil
	}
	return s, "", nil
}
