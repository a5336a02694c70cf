package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/health"
	"github.com/bam-dev/bam/internal/portal"
	"github.com/bam-dev/bam/internal/store"
)

// Defaults of Config.
const (
	DefaultMaxBody         = 8 << 20 // bytes of one request body
	DefaultShutdownTimeout = 10 * time.Second
)

// Timeouts of the HTTP server. A request body of DefaultMaxBody takes a few
// seconds on a slow link; a client that sends its headers slower than
// readHeaderTimeout, or holds an idle connection longer than idleTimeout,
// is cut off.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// storeTimeout bounds the store work of one request, so that a stuck
	// store answers 503 rather than holding the client until writeTimeout.
	storeTimeout = time.Minute
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "1"
)

// ErrNotLoopback is returned by CheckAddr and Listen for an address beyond
// this machine when Config.AllowRemote is not set.
var ErrNotLoopback = errors.New("not a loopback address, and the HTTP API has no authentication yet")

// Config is the HTTP API's configuration. Zero values take the defaults.
type Config struct {
	// Addr is where to listen, HOST:PORT (e.g. 127.0.0.1:8480; port 0
	// picks a free port, which Serve logs).
	Addr string
	// AllowRemote allows an Addr that is not loopback (0.0.0.0:8480,
	// :8480, a public IP). There is no authentication yet: put a proxy that
	// authenticates in front.
	AllowRemote bool
	// MaxBody bounds a request body, in bytes; a larger one gets 413.
	// Default DefaultMaxBody.
	MaxBody int64
	// MaxEventSize bounds one event's JSON form, in bytes; a larger event
	// is rejected. Default event.DefaultMaxSize (the node's
	// --max-event-size).
	MaxEventSize int
	// IdempotencyRetention is how long an Idempotency-Key answers retries,
	// by the store's clock. Default store.DefaultIdempotencyRetention.
	IdempotencyRetention time.Duration
	// ShutdownTimeout is how long Serve waits for requests in flight once
	// its context ends, before closing their connections. Default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Validate, when set, checks each event after event.Decode (e.g.
	// against the deployed activity definitions: catalog.Catalog). An
	// *event.Error rejects the event, naming its field; any other error
	// means the check could not be made, and the request gets 503.
	Validate func(context.Context, event.Event) error
	// RequireDefinitions: a retried failed event of an activity without a
	// deployed definition stays failed (the node's --require-definitions).
	RequireDefinitions bool
	// LeaseTTL is the nodes' lease TTL: a node whose heartbeat is older is
	// shown dead. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// CountBound is how far a count of something that can grow large goes
	// (a session's backlog, the failed events a filter matches) before it
	// stops and says "at least": counting never loads the store. Default
	// store.DefaultBacklogBound.
	CountBound int64
	// MaxBulk bounds how many failed events one bulk retry or discard
	// takes up; the answer says when more match. Default DefaultMaxBulk.
	MaxBulk int
	// Metrics, when set, counts every request by route pattern and status
	// code, and serves GET /metrics; without it /metrics answers 404.
	Metrics Metrics
	// Ready answers GET /readyz and /healthz: the node's readiness
	// (health.NodeChecks, which bam serve passes). Default: the store
	// write probe alone, for an API that runs without a node.
	Ready *health.Checker
}

// Metrics is the node's metrics as the API serves and feeds them (package
// metrics implements it).
type Metrics interface {
	// Handler serves the node's metrics in Prometheus's text format.
	Handler() http.Handler
	// Request records a request answered: the ServeMux pattern that
	// matched it (empty when it was refused before routing), its status
	// code and how long it took.
	Request(route string, code int, took time.Duration)
}

// DefaultMaxBulk is Config.MaxBulk's default.
const DefaultMaxBulk = 1000

// DefaultLeaseTTL is Config.LeaseTTL's default, the pool's.
const DefaultLeaseTTL = 3 * time.Second // pool.DefaultConfig().LeaseTTL; bam serve passes its own

func (c Config) withDefaults() Config {
	c.MaxBody = cmp.Or(c.MaxBody, DefaultMaxBody)
	c.MaxEventSize = cmp.Or(c.MaxEventSize, event.DefaultMaxSize)
	c.IdempotencyRetention = cmp.Or(c.IdempotencyRetention, store.DefaultIdempotencyRetention)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	c.CountBound = cmp.Or(c.CountBound, store.DefaultBacklogBound)
	c.MaxBulk = cmp.Or(c.MaxBulk, DefaultMaxBulk)
	return c
}

// CheckAddr checks that addr is HOST:PORT and, unless allowRemote, that
// HOST is a loopback address (127.0.0.0/8, ::1) or localhost. An empty
// HOST listens on every interface, so it is not loopback.
func CheckAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not HOST:PORT (e.g. 127.0.0.1:8480): %w", addr, err)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("address %s: %w", addr, ErrNotLoopback)
}

// loopbackHost reports whether a request's Host (HOST or HOST:PORT) names
// this machine's loopback: localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return isLoopback(host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen checks cfg.Addr with CheckAddr and listens on it. Without
// AllowRemote it also checks the address it got (localhost may resolve to
// anything).
func Listen(ctx context.Context, cfg Config) (net.Listener, error) {
	if err := CheckAddr(cfg.Addr, cfg.AllowRemote); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !cfg.AllowRemote && (!ok || !tcp.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("address %s resolved to %s: %w", cfg.Addr, ln.Addr(), ErrNotLoopback)
	}
	return ln, nil
}

// Store is what the API reads and changes: the whole store, since the
// operations it serves (package ops) are those of the command line.
type Store = store.Store

// Server is the HTTP API over one store.
type Server struct {
	st  Store
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	// tuned holds the pool-wide settings a running node changes live
	// (Tune); cfg's copies of them are only their start values.
	tuned atomic.Pointer[Tunables]
}

// Tunables are the settings of Config that a running node changes live,
// when the pool's settings change (package settings).
type Tunables struct {
	MaxEventSize         int
	IdempotencyRetention time.Duration
	RequireDefinitions   bool
}

// Tune changes the Tunables: requests that begin after it use them. A
// zero size or retention keeps the current one.
func (s *Server) Tune(t Tunables) {
	cur := s.tunables()
	t.MaxEventSize = cmp.Or(t.MaxEventSize, cur.MaxEventSize)
	t.IdempotencyRetention = cmp.Or(t.IdempotencyRetention, cur.IdempotencyRetention)
	s.tuned.Store(&t)
}

// tunables returns the Tunables as they are now.
func (s *Server) tunables() Tunables { return *s.tuned.Load() }

// New returns the API over st. Handler serves it; Serve runs it on a
// listener.
func New(st Store, cfg Config, log *slog.Logger) *Server {
	s := &Server{st: st, cfg: cfg.withDefaults(), log: log.With("component", "http"), mux: http.NewServeMux()}
	if s.cfg.Ready == nil {
		s.cfg.Ready = health.NewChecker(health.Config{}, health.StoreWriteCheck(st, ""))
	}
	s.tuned.Store(&Tunables{MaxEventSize: s.cfg.MaxEventSize, IdempotencyRetention: s.cfg.IdempotencyRetention, RequireDefinitions: s.cfg.RequireDefinitions})
	allowed := map[string][]string{}
	var paths []string
	for _, r := range s.routes() {
		s.mux.HandleFunc(r.method+" "+r.path, r.handle)
		if allowed[r.path] == nil {
			paths = append(paths, r.path)
		}
		allowed[r.path] = append(allowed[r.path], r.method)
	}
	// The same paths without a method catch the other methods, so that a
	// 405 is JSON like every other error.
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)})
		})
	}
	// The portal's pages and files (package portal); a GET of any other
	// path outside /v1/ is a page the portal does not have, and says so
	// as a page (404); the rest is the API's.
	web := portal.New()
	for _, p := range portal.Pages {
		s.mux.Handle("GET "+p, web)
	}
	s.mux.Handle("GET "+portal.AssetsPrefix, web)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/v1/") {
			web.NotFound(w, r)
			return
		}
		writeError(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no such endpoint: %s %s (see docs/openapi.yaml)", r.Method, r.URL.Path)})
	})
	return s
}

// route is one endpoint. docs/openapi.yaml describes every one of them.
type route struct {
	method, path string
	handle       http.HandlerFunc
}

func (s *Server) routes() []route {
	return []route{
		{http.MethodPost, "/v1/sources/{source}/events", s.ingest},
		{http.MethodGet, "/v1/activities/{activity}/instances/{id}", s.getInstance},
		{http.MethodGet, "/v1/activities/{activity}/instances", s.listInstances},
		{http.MethodGet, "/v1/activities/{activity}/search", s.searchInstances},
		{http.MethodGet, "/v1/activities/{activity}/filter", s.checkFilter},
		{http.MethodGet, "/v1/activities/{activity}/aggregations/{aggregation}", s.getAggregation},
		{http.MethodGet, "/healthz", s.health},
		{http.MethodGet, "/metrics", s.metrics},
		{http.MethodGet, "/livez", health.Live().ServeHTTP},
		{http.MethodGet, "/readyz", s.cfg.Ready.Handler("readyz").ServeHTTP},

		{http.MethodGet, "/v1/activities", s.listActivities},
		{http.MethodGet, "/v1/activities/{activity}", s.getActivity},
		{http.MethodGet, "/v1/definitions", s.exportDefinitions},
		{http.MethodGet, "/v1/deployments", s.listDeployments},

		{http.MethodGet, "/v1/nodes", s.listNodes},
		{http.MethodGet, "/v1/sessions", s.listSessions},

		{http.MethodGet, "/v1/alerts", s.listAlerts},
		{http.MethodGet, "/v1/alerts/{activity}/{alert}", s.getAlert},
		{http.MethodPut, "/v1/alerts/{activity}/{alert}", s.putAlert},
		{http.MethodDelete, "/v1/alerts/{activity}/{alert}", s.deleteAlert},
		{http.MethodGet, "/v1/firings", s.listFirings},

		{http.MethodGet, "/v1/failed", s.listFailed},
		{http.MethodGet, "/v1/failed/{id}", s.getFailed},
		{http.MethodDelete, "/v1/failed/{id}", s.discardFailed},
		{http.MethodPost, "/v1/failed/{id}/retry", s.retryFailed},
		{http.MethodPost, "/v1/failed:retry", s.bulkFailed(true)},
		{http.MethodPost, "/v1/failed:discard", s.bulkFailed(false)},

		{http.MethodGet, "/v1/sources", s.listSources},
		{http.MethodPost, "/v1/sources", s.addSource},
		{http.MethodGet, "/v1/sources/{source}", s.getSource},
		{http.MethodPost, "/v1/sources/{source}/enable", s.switchSource("enable")},
		{http.MethodPost, "/v1/sources/{source}/disable", s.switchSource("disable")},
		{http.MethodPost, "/v1/sources/{source}/pause", s.switchSource("pause")},
		{http.MethodPost, "/v1/sources/{source}/resume", s.switchSource("resume")},
	}
}

// Handler returns the API's handler.
//
// Since a browser on the operator's machine holds the portal, and any page
// it opens can send requests to a loopback address, two kinds of request
// are refused before any endpoint sees them: one that a browser sends from
// another site, unless it is safe (GET, HEAD: http.CrossOriginProtection,
// which leaves alone clients that are no browser), and, on a loopback
// listener (no AllowRemote), one whose Host is no loopback name: a page of
// another site whose name resolves to 127.0.0.1 (DNS rebinding) would
// otherwise read and change the store as a same-origin page.
func (s *Server) Handler() http.Handler {
	csrf := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h := rec.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		switch {
		case !s.cfg.AllowRemote && !loopbackHost(r.Host):
			writeError(rec, http.StatusMisdirectedRequest, errorBody{Error: fmt.Sprintf(
				"host %q is not this node's loopback address: refused, so that a web page of another site cannot reach the API through its own name (--http-allow-remote serves any host)", r.Host)})
		case csrf.Check(r) != nil:
			writeError(rec, http.StatusForbidden, errorBody{Error: fmt.Sprintf(
				"%s %s from a page of another site (Origin %q) is refused: only the portal at this address, or a client that is no browser, may change the store", r.Method, r.URL.Path, r.Header.Get("Origin"))})
		default:
			s.mux.ServeHTTP(rec, r)
		}
		took := time.Since(start)
		if s.cfg.Metrics != nil {
			// The mux set the pattern that matched on r: a bounded label,
			// unlike the path.
			s.cfg.Metrics.Request(r.Pattern, rec.status, took)
		}
		s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", took, "remote", r.RemoteAddr)
	})
}

// statusRecorder remembers the status a handler wrote, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Serve serves the API on ln until ctx ends, then stops accepting
// connections and waits up to Config.ShutdownTimeout for the requests in
// flight before closing their connections. It logs the address it serves
// on ("http api listening", addr). It closes ln. A clean stop returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("http api listening", "addr", addr, "url", "http://"+addr)
	select {
	case err := <-served:
		return fmt.Errorf("http api on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http requests still in flight after the stop timeout; closing their connections", "stop_timeout", s.cfg.ShutdownTimeout)
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed
	s.log.Info("http api stopped", "addr", addr)
	return nil
}

// metrics serves the node's Prometheus metrics (Config.Metrics).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeError(w, http.StatusNotFound, errorBody{Error: "metrics are off on this server"})
		return
	}
	s.cfg.Metrics.Handler().ServeHTTP(w, r)
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
	// Limit is the limit a request went over, in bytes (413).
	Limit int64 `json:"limit,omitempty"`
	// Offset is where a malformed body goes wrong, in bytes from its start (400).
	Offset *int64 `json:"offset,omitempty"`
	// IdempotencyKey is the key of a conflict (422).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

func writeError(w http.ResponseWriter, status int, body errorBody) {
	writeJSON(w, status, body)
}

// unavailable answers 503 for a store error, logging it; the client is not
// told what went wrong inside (it could name the store).
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		s.log.Debug("http request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Error("http request: store failed", "method", r.Method, "path", r.URL.Path, "what", what, "err", err)
	}
	w.Header().Set("Retry-After", retryAfter)
	writeError(w, http.StatusServiceUnavailable, errorBody{Error: "the store is unavailable: " + what + "; retry later"})
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the API's own types are written, and they always marshal.
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	writeRaw(w, status, append(b, '\n'))
}

// writeRaw writes a JSON body as is.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// storeContext bounds the store work of a request (storeTimeout).
func storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), storeTimeout)
}

// jsonTime is an instant in JSON: RFC 3339 in UTC, null for none.
func jsonTime(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
