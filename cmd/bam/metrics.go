package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bam-dev/bam/internal/health"
	"github.com/bam-dev/bam/internal/httpapi"
	"github.com/bam-dev/bam/internal/metrics"
)

// metricsService serves the node's metrics on a listener of its own
// (--metrics ADDR), for as long as the node runs, with or without the HTTP
// API. Its mux is small on purpose: it serves what a monitoring system
// scrapes and nothing that reads or changes the store on request.
type metricsService struct {
	mux *http.ServeMux
	ln  net.Listener
	log *slog.Logger
}

// listenMetrics opens the metrics listener at once, so that an address in
// use fails the start rather than a running node. Without allowRemote the
// address must be loopback, as the API's (httpapi.Listen).
// It serves the node's health too (/livez, /readyz), from ready: the
// listener a monitoring system scrapes is the one it probes.
func listenMetrics(ctx context.Context, addr string, allowRemote bool, m *metrics.Node, ready *health.Checker, log *slog.Logger) (*metricsService, error) {
	ln, err := httpapi.Listen(ctx, httpapi.Config{Addr: addr, AllowRemote: allowRemote})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /livez", health.Live())
	mux.Handle("GET /readyz", ready.Handler("readyz"))
	return &metricsService{mux: mux, ln: ln, log: log.With("component", "metrics")}, nil
}

func (s *metricsService) Name() string { return "metrics" }

// Run serves until ctx ends, then closes the listener; a scrape in flight
// gets a second to finish.
func (s *metricsService) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	addr := s.ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.ln) }()
	s.log.Info("metrics listening", "addr", addr, "url", "http://"+addr+"/metrics")
	select {
	case err := <-served:
		return fmt.Errorf("metrics on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics on %s: %w", addr, err)
	}
	return nil
}
