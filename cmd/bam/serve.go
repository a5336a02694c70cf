package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/health"
	"github.com/bam-dev/bam/internal/httpapi"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/metrics"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

func (a *app) serveCommand() *cobra.Command {
	var (
		// The flags set what they name; the rest keeps its default.
		cfg     = pool.DefaultConfig()
		httpCfg httpapi.Config
		// requireDefinitions refuses events of undeployed activities.
		requireDefinitions bool
		alertCfg           = alert.DefaultConfig()
		mailer             notify.Mailer
		// metricsAddr is the metrics listener's (--metrics); metrics are
		// kept when it or the HTTP API is on.
		metricsAddr        string
		metricsAllowRemote bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a node of the pool: move events from the sources into the store",
		Long: `serve joins the pool of nodes that share the store and moves the events of
the sessions it owns into the store, until SIGTERM or SIGINT. Then it finishes
the batches in hand, releases its leases so that other nodes take over at once,
and leaves.

Start as many nodes as you like, on one or several machines: they share the
sessions, and the sessions of a node that dies run elsewhere within seconds.

Every event is checked against its activity's deployed definition (bam
deploy): one that does not fit is quarantined as a failed event, to be
retried once a definition that accepts it is deployed. Events of activities
without a definition are kept untyped, unless --require-definitions.

--http ADDR also serves the HTTP API there (docs/HTTP.md): applications post
events to buffer sources, analysts read instances; /livez and /readyz say
whether the process works and whether the node can do its job now
(docs/OPERATIONS.md, "Health"). It has no authentication
yet, so ADDR must be a loopback address (127.0.0.1:8480) unless
--http-allow-remote is given.

--metrics ADDR serves the node's Prometheus metrics at /metrics there, and
its health at /livez and /readyz, with or without --http (the HTTP API
serves them too). ADDR must be a loopback address (127.0.0.1:9480) unless
--metrics-allow-remote is given.

The deployed alerts (docs/ALERTS.md) are evaluated by one node of the pool at
a time, every --alert-interval. Whichever node it is delivers their firings:
webhooks signed with the secret in its environment variable secret_env, and
emails through --smtp (the password, if any, in BAM_SMTP_PASSWORD). Give
every node the same --smtp and environment.

The settings every node of the pool must share (lease TTL, max event size,
require-definitions, ...: bam config --help) are best set once for the pool
with bam config set: a node reads them at start and applies changes of the
live ones while it runs. A flag here, its BAM_<FLAG> variable or its key in
the --config file overrides the pool's value for this node (logged once).`,
		Example: `  bam serve
  bam serve --http 127.0.0.1:8480
  bam serve --metrics 127.0.0.1:9480`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return configUsageError(err)
			}
			if httpCfg.Addr == "" {
				for _, name := range []string{"http-allow-remote", "http-max-body", "http-idempotency-retention"} {
					if a.origin(name) == settings.FromFlag { // a shared file or environment may hold it
						return usageErrorf("--%s needs --http ADDR (the HTTP API is off without it)", name)
					}
				}
			} else {
				switch err := httpapi.CheckAddr(httpCfg.Addr, httpCfg.AllowRemote); {
				case errors.Is(err, httpapi.ErrNotLoopback):
					return usageErrorf("--http %s: %w; use a loopback address such as 127.0.0.1:8480, or add --http-allow-remote and put a proxy that authenticates in front", httpCfg.Addr, err)
				case err != nil:
					return usageErrorf("--http: %w", err)
				case httpCfg.MaxBody < 1:
					return usageErrorf("--http-max-body must be at least 1")
				case httpCfg.IdempotencyRetention <= 0:
					return usageErrorf("--http-idempotency-retention must be positive")
				}
			}
			if metricsAddr == "" {
				if cmd.Flags().Changed("metrics-allow-remote") {
					return usageErrorf("--metrics-allow-remote needs --metrics ADDR")
				}
			} else {
				switch err := httpapi.CheckAddr(metricsAddr, metricsAllowRemote); {
				case errors.Is(err, httpapi.ErrNotLoopback):
					return usageErrorf("--metrics %s: not a loopback address; use one such as 127.0.0.1:9480, or add --metrics-allow-remote to let other machines scrape it", metricsAddr)
				case err != nil:
					return usageErrorf("--metrics: %w", err)
				}
			}
			if alertCfg.Interval <= 0 {
				return usageErrorf("--alert-interval must be positive")
			}
			if mailer.Addr == "" {
				for _, name := range []string{"smtp-from", "smtp-user", "smtp-require-tls"} {
					if a.origin(name) == settings.FromFlag { // a shared file or environment may hold it
						return usageErrorf("--%s needs --smtp HOST:PORT (email is off without it)", name)
					}
				}
			} else if mailer.From == "" {
				return usageErrorf("--smtp needs --smtp-from ADDRESS, the sender of the alert emails")
			}
			mailer.Password = a.getenv("BAM_SMTP_PASSWORD")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return withStoreOpened(ctx, a.openStoreWaiting, func(st store.Store) error {
				// The pool's settings fill in the flags this node does not
				// set itself, and a follower applies their changes live.
				ps, follow := st.(store.PoolSettings)
				var own, running settings.Values
				var poolValues map[string]string
				if follow {
					var err error
					if own, running, poolValues, err = a.poolSettingsForNode(ctx, cmd.Flags(), ps); err != nil {
						return err
					}
				}
				var api *httpService
				var alertEvery atomic.Int64
				alertEvery.Store(int64(alertCfg.Interval))
				alertCfg.CurrentInterval = func() time.Duration { return time.Duration(alertEvery.Load()) }
				// One copy of the deployed definitions checks the events of
				// every session and of the HTTP API.
				defs := catalog.New(st, catalog.Options{Strict: requireDefinitions})
				cfg.Session.Validator = defs
				var m *metrics.Node
				if metricsAddr != "" || httpCfg.Addr != "" {
					m = metrics.New()
					cfg.Metrics, cfg.Session.Metrics, httpCfg.Metrics = m, m, m
				}
				node, err := pool.NewNode(st, cfg, a.log)
				if err != nil {
					return configUsageError(err)
				}
				if m != nil {
					m.WatchNode(st, node, metrics.StoreOptions{LeaseTTL: cfg.LeaseTTL})
				}
				alertCfg.Send = alert.Sender{Webhook: &notify.Webhook{UserAgent: userAgent()}, Node: node.ID(), Getenv: a.getenv}
				if mailer.Addr != "" {
					alertCfg.Send.Mailer = &mailer
				}
				if ast, ok := st.(alert.Store); ok {
					node.AttachWorker(store.KindAlerts, func(held *lease.Lease) pool.Worker {
						return alert.NewEvaluator(alertCfg, ast, node.ID(), held, a.log.With("node", node.ID()))
					})
				}
				// One readiness for every listener that serves /readyz, so
				// that they share its cache and its one write probe a second.
				ready := health.NewChecker(health.Config{}, health.NodeChecks(st, node, health.Bounds{Heartbeat: cfg.LeaseTTL - cfg.SafetyMargin})...)
				if metricsAddr != "" {
					ms, err := listenMetrics(ctx, metricsAddr, metricsAllowRemote, m, ready, a.log)
					if err != nil {
						return fmt.Errorf("not starting the node: %w", err)
					}
					node.Attach(ms)
				}
				if httpCfg.Addr != "" {
					httpCfg.Ready = ready
					httpCfg.Validate = defs.Validate
					httpCfg.MaxEventSize = cfg.Session.MaxEventSize
					httpCfg.ShutdownTimeout = cfg.StopTimeout
					httpCfg.RequireDefinitions = requireDefinitions
					httpCfg.LeaseTTL = cfg.LeaseTTL
					api, err = listenHTTP(ctx, st, httpCfg, a.log)
					if err != nil {
						return fmt.Errorf("not starting the node: %w", err)
					}
					node.Attach(api)
				}
				if follow {
					node.Attach(a.followPoolSettings(ps, node, own, running, poolValues, func(v settings.Values) {
						defs.SetStrict(v.RequireDefinitions)
						alertEvery.Store(int64(v.AlertInterval))
						if api != nil {
							api.api.Tune(httpapi.Tunables{MaxEventSize: v.Pool.Session.MaxEventSize, IdempotencyRetention: v.IdempotencyRetention, RequireDefinitions: v.RequireDefinitions})
						}
					}))
				}
				a.log.Info("bam serve: starting", "node", node.ID(), "store", storeurl.Redact(a.storeURL))
				err = node.Run(ctx)
				a.log.Info("bam serve: node " + node.ID() + " stopped")
				if err != nil {
					return fmt.Errorf("node %s: %w", node.ID(), err)
				}
				return nil
			})
		}),
	}
	d := pool.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "the node's name, shown in status (default: the host name)")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", d.LeaseTTL, "how long a session lease lives past its last renewal")
	f.DurationVar(&cfg.RenewInterval, "renew-interval", d.RenewInterval, "time between lease renewals (and heartbeats)")
	f.DurationVar(&cfg.SafetyMargin, "safety-margin", d.SafetyMargin, "stop committing this long before a lease could expire")
	f.DurationVar(&cfg.BalanceInterval, "balance-interval", d.BalanceInterval, "time between balance rounds")
	f.IntVar(&cfg.MaxMovesPerRound, "max-moves", d.MaxMovesPerRound, "sessions a node above its share hands to each node below it per balance round")
	f.DurationVar(&cfg.LivenessConfirm, "liveness-confirm", d.LivenessConfirm, "a peer whose liveness lock stays gone this long, with no heartbeat from it, is found dead (longer than a reconnect to the store)")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", d.StopTimeout, "on SIGTERM, how long to wait for the batches in hand before abandoning them")
	f.DurationVar(&cfg.SourceGiveUp, "source-give-up", d.SourceGiveUp, "hand over a session whose source this node has failed to read for this long, so that another node tries it")
	f.IntVar(&cfg.Session.BatchSize, "batch-size", d.Session.BatchSize, "events per batch (one store transaction)")
	f.IntVar(&cfg.Session.MaxBatchSize, "max-batch-size", d.Session.MaxBatchSize, "events per batch while a backlog drains (after a full batch, until a short one); --batch-size or less keeps batches fixed")
	f.DurationVar(&cfg.Session.BatchWait, "batch-wait", d.Session.BatchWait, "after reading a partial batch, wait this long for more events before applying (0: apply at once)")
	f.DurationVar(&cfg.Session.PollInterval, "poll-interval", d.Session.PollInterval, "fallback read interval of an idle session without notifications")
	f.IntVar(&cfg.Session.MaxEventSize, "max-event-size", d.Session.MaxEventSize, "bytes; a larger event is quarantined (and refused by the HTTP API)")
	f.BoolVar(&requireDefinitions, "require-definitions", false, "quarantine (and refuse over HTTP) the events of activities that have no deployed definition; by default they are kept untyped")
	f.StringVar(&httpCfg.Addr, "http", "", "serve the HTTP API on this address, e.g. 127.0.0.1:8480 (default: off)")
	f.BoolVar(&httpCfg.AllowRemote, "http-allow-remote", false, "allow an --http address that is not loopback (the API has no authentication yet)")
	f.Int64Var(&httpCfg.MaxBody, "http-max-body", httpapi.DefaultMaxBody, "bytes; a larger HTTP request body is refused with 413")
	f.DurationVar(&httpCfg.IdempotencyRetention, "http-idempotency-retention", store.DefaultIdempotencyRetention, "how long an HTTP Idempotency-Key answers retries")
	f.DurationVar(&alertCfg.Interval, "alert-interval", alertCfg.Interval, "time between two evaluations of the alerts (by the one node that owns the alerts session)")
	f.StringVar(&metricsAddr, "metrics", "", "serve the node's Prometheus metrics at /metrics, and /livez and /readyz, on this address, e.g. 127.0.0.1:9480 (default: off; --http serves them too)")
	f.BoolVar(&metricsAllowRemote, "metrics-allow-remote", false, "allow a --metrics address that is not loopback")
	f.StringVar(&alertCfg.Link, "alert-link", "", "the portal's address as alert receivers reach it (https://bam.example.com), for the link each delivery carries (default: none)")
	f.StringVar(&mailer.Addr, "smtp", "", "deliver alert emails through this SMTP server, HOST:PORT (default: off; the password, if any, from BAM_SMTP_PASSWORD)")
	f.StringVar(&mailer.From, "smtp-from", "", "the sender of alert emails, e.g. 'bam <bam@example.com>'")
	f.StringVar(&mailer.Username, "smtp-user", "", "log in to the SMTP server as this user (AUTH PLAIN, over TLS only unless the server is on loopback)")
	f.BoolVar(&mailer.RequireTLS, "smtp-require-tls", false, "refuse to send email in plain text, even to a loopback server")
	return cmd
}

// serveFlags names the flag of each pool.Config field that serve sets,
// so that a setting out of range is refused in the user's words.
var serveFlags = map[string]string{
	"LeaseTTL":             "--lease-ttl",
	"RenewInterval":        "--renew-interval",
	"SafetyMargin":         "--safety-margin",
	"BalanceInterval":      "--balance-interval",
	"MaxMovesPerRound":     "--max-moves",
	"LivenessConfirm":      "--liveness-confirm",
	"StopTimeout":          "--stop-timeout",
	"SourceGiveUp":         "--source-give-up",
	"Session.BatchSize":    "--batch-size",
	"Session.MaxBatchSize": "--max-batch-size",
	"Session.BatchWait":    "--batch-wait",
	"Session.PollInterval": "--poll-interval",
	"Session.MaxEventSize": "--max-event-size",
}

// configUsageError turns the node's refusal of its configuration into a
// usage error that names the flag.
func configUsageError(err error) error {
	var ce *pool.ConfigError
	if errors.As(err, &ce) {
		if flag, ok := serveFlags[ce.Field]; ok {
			return usageErrorf("%s %w", flag, ce.Err)
		}
	}
	return &usageError{err}
}

// httpService is the HTTP API as a service of the node: it serves on its
// listener for as long as the node runs.
type httpService struct {
	api *httpapi.Server
	ln  net.Listener
}

// listenHTTP opens the API's listener at once, so that an address in use
// fails the start rather than a running node.
func listenHTTP(ctx context.Context, st store.Store, cfg httpapi.Config, log *slog.Logger) (*httpService, error) {
	ln, err := httpapi.Listen(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	return &httpService{api: httpapi.New(st, cfg, log), ln: ln}, nil
}

func (h *httpService) Name() string { return "http api" }

func (h *httpService) Run(ctx context.Context) error { return h.api.Serve(ctx, h.ln) }
