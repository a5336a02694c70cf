package health

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Check is one named condition of readiness.
type Check struct {
	// Name is how the answer names it: lower case, words joined by "-".
	Name string
	// Run returns nil when the condition holds, or why it does not, in a
	// sentence an operator can act on. It must return by ctx's deadline.
	Run func(ctx context.Context) error
}

// Result is a check's outcome.
type Result struct {
	Name string
	Err  error // nil: passed
}

// Config tunes a Checker. Zero values take the defaults.
type Config struct {
	// CacheFor is how long an evaluation's results answer before the
	// checks run again. Default DefaultCacheFor.
	CacheFor time.Duration
	// Timeout bounds one evaluation: the write probe must commit within
	// it. Default DefaultTimeout; a Kubernetes probe's timeoutSeconds must
	// be longer.
	Timeout time.Duration
}

// Defaults of Config.
const (
	DefaultCacheFor = time.Second
	DefaultTimeout  = time.Second
)

// Checker runs its checks at most once per Config.CacheFor, one
// evaluation at a time, and answers from the last one meanwhile.
type Checker struct {
	cfg    Config
	checks []Check

	mu      sync.Mutex
	last    []Result
	lastAt  time.Time
	running chan struct{} // closed when the evaluation in flight ends; nil when none runs
}

// NewChecker returns a Checker of checks, evaluated in that order.
func NewChecker(cfg Config, checks ...Check) *Checker {
	cfg.CacheFor = cmp.Or(cfg.CacheFor, DefaultCacheFor)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	return &Checker{cfg: cfg, checks: checks}
}

// Names returns the checks' names, in order.
func (c *Checker) Names() []string {
	names := make([]string, len(c.checks))
	for i, ch := range c.checks {
		names[i] = ch.Name
	}
	return names
}

// Results returns every check's result, from the last evaluation if it
// is younger than Config.CacheFor, else from a new one (or the one in
// flight). It returns early, with ctx's error, only if ctx ends while it
// waits for an evaluation another caller started.
func (c *Checker) Results(ctx context.Context) ([]Result, error) {
	c.mu.Lock()
	if c.last != nil && time.Since(c.lastAt) < c.cfg.CacheFor {
		defer c.mu.Unlock()
		return c.last, nil
	}
	if done := c.running; done != nil {
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last, nil
	}
	done := make(chan struct{})
	c.running = done
	c.mu.Unlock()

	results := c.evaluate()
	c.mu.Lock()
	c.last, c.lastAt, c.running = results, time.Now(), nil
	c.mu.Unlock()
	close(done)
	return results, nil
}

// evaluate runs every check at once, under one deadline of its own: an
// asker that goes away must not cut a probe short, nor leave the next
// askers without an answer.
func (c *Checker) evaluate() []Result {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	results := make([]Result, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Result{Name: ch.Name, Err: ch.Run(ctx)}
		}()
	}
	wg.Wait()
	return results
}

// Handler answers an endpoint named name ("readyz") with the checks'
// verdict (doc.go, "The answer").
func (c *Checker) Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		q := r.URL.Query()
		exclude := q["exclude"]
		for _, x := range exclude {
			if !slices.Contains(c.Names(), x) {
				http.Error(w, fmt.Sprintf("exclude=%s: no such check; the checks are %s", x, strings.Join(c.Names(), ", ")), http.StatusBadRequest)
				return
			}
		}
		results, err := c.Results(r.Context())
		if err != nil {
			http.Error(w, name+" check not finished: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		ok := true
		for _, res := range results {
			if slices.Contains(exclude, res.Name) {
				if q.Has("verbose") {
					fmt.Fprintf(&b, "[+]%s excluded: ok\n", res.Name)
				}
				continue
			}
			switch {
			case res.Err != nil:
				ok = false
				fmt.Fprintf(&b, "[-]%s failed: %s\n", res.Name, oneLine(res.Err.Error()))
			case q.Has("verbose"):
				fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
			}
		}
		status := http.StatusOK
		switch {
		case !ok:
			status = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "%s check failed\n", name)
		case q.Has("verbose"):
			fmt.Fprintf(&b, "%s check passed\n", name)
		default:
			b.WriteString("ok")
		}
		write(w, r, status, b.String())
	})
}

// Live answers /livez: 200 "ok" while the process serves (doc.go,
// "Liveness"); with ?verbose, Kubernetes' form of the same.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		body := "ok"
		if r.URL.Query().Has("verbose") {
			body = "[+]ping ok\nlivez check passed\n"
		}
		write(w, r, http.StatusOK, body)
	})
}

// allowed answers a method other than GET and HEAD with 405.
func allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, fmt.Sprintf("method %s is not allowed on %s (allowed: GET, HEAD)", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
	return false
}

func write(w http.ResponseWriter, r *http.Request, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// oneLine keeps a reason on its line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
