package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/httpapi"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

func (a *app) serveCommand() *cobra.Command {
	var (
		cfg     pool.Config
		httpCfg httpapi.Config
		// requireDefinitions refuses events of undeployed activities.
		requireDefinitions bool
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
events to buffer sources, analysts read instances. It has no authentication
yet, so ADDR must be a loopback address (127.0.0.1:8480) unless
--http-allow-remote is given.`,
		Example: `  bam serve
  bam serve --http 127.0.0.1:8480`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			// pool.Config takes a zero as "the default": refuse it here, so
			// that --safety-margin 0 does not silently mean 500ms.
			switch {
			case cfg.LeaseTTL <= 0, cfg.RenewInterval <= 0, cfg.SafetyMargin <= 0, cfg.BalanceInterval <= 0:
				return usageErrorf("--lease-ttl, --renew-interval, --safety-margin and --balance-interval must be positive")
			case cfg.StopTimeout <= 0:
				return usageErrorf("--stop-timeout must be positive")
			case cfg.SourceGiveUp <= 0:
				return usageErrorf("--source-give-up must be positive")
			case cfg.LivenessConfirm <= 0:
				return usageErrorf("--liveness-confirm must be positive")
			case cfg.MaxMovesPerRound < 1:
				return usageErrorf("--max-moves must be at least 1")
			case cfg.Session.BatchSize < 1:
				return usageErrorf("--batch-size must be at least 1")
			case cfg.Session.MaxBatchSize < 1:
				return usageErrorf("--max-batch-size must be at least 1")
			case cfg.Session.BatchWait < 0:
				return usageErrorf("--batch-wait must not be negative")
			case cfg.Session.PollInterval <= 0:
				return usageErrorf("--poll-interval must be positive")
			case cfg.Session.MaxEventSize < 1:
				return usageErrorf("--max-event-size must be at least 1")
			}
			if err := cfg.Validate(); err != nil {
				return &usageError{err}
			}
			if httpCfg.Addr == "" {
				for _, name := range []string{"http-allow-remote", "http-max-body", "http-idempotency-retention"} {
					if cmd.Flags().Changed(name) {
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
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return withStoreOpened(ctx, a.openStoreWaiting, func(st store.Store) error {
				var ln net.Listener
				if httpCfg.Addr != "" {
					var err error
					if ln, err = httpapi.Listen(ctx, httpCfg); err != nil {
						return fmt.Errorf("not starting the node: http api: %w", err)
					}
				}
				// One copy of the deployed definitions checks the events of
				// every session and of the HTTP API.
				defs := catalog.New(st, catalog.Options{Strict: requireDefinitions})
				cfg.Session.Validator = defs
				httpCfg.Validate = defs.Validate
				node := pool.NewNode(st, cfg, a.log)
				stopPurge := startWindowPurge(ctx, st, windowPurgeInterval, a.log)
				defer stopPurge() // before st.Close
				a.log.Info("bam serve: starting", "node", node.ID(), "store", storeurl.Redact(a.storeURL))
				err := a.runNode(ctx, node, st, ln, httpCfg, cfg)
				a.log.Info("bam serve: node " + node.ID() + " stopped")
				return err
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
	return cmd
}

// runNode runs the node and, when ln is not nil, the HTTP API on ln, until
// ctx ends or either fails; then both stop (the API waits up to
// --stop-timeout for its requests in flight) before the store is closed.
func (a *app) runNode(ctx context.Context, node *pool.Node, st store.Store, ln net.Listener, httpCfg httpapi.Config, cfg pool.Config) error {
	if ln == nil {
		if err := node.Run(ctx); err != nil {
			return fmt.Errorf("node %s: %w", node.ID(), err)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	httpCfg.MaxEventSize = cfg.Session.MaxEventSize
	httpCfg.ShutdownTimeout = cfg.StopTimeout
	api := httpapi.New(st, httpCfg, a.log)
	served := make(chan error, 1)
	go func() {
		err := api.Serve(ctx, ln)
		cancel() // the API failed or stopped: stop the node too
		served <- err
	}()
	err := node.Run(ctx)
	cancel()
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("node %s: %w", node.ID(), err))
	}
	if err := <-served; err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
