package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

// Node is one node's metrics: its registry and collectors. It implements
// bus.Metrics, pool.Metrics and httpapi.Metrics. Safe for concurrent use.
type Node struct {
	reg *prometheus.Registry

	eventsCommitted  *prometheus.CounterVec
	eventsFailed     *prometheus.CounterVec
	recordsCommitted *prometheus.CounterVec
	batchesCommitted *prometheus.CounterVec
	batchesFailed    *prometheus.CounterVec
	applyDuration    *prometheus.HistogramVec

	ownerChanges  *prometheus.CounterVec
	renewDuration prometheus.Histogram
	renewFailures prometheus.Counter
	balanceRounds prometheus.Counter
	balanceFailed prometheus.Counter
	balanceMoves  prometheus.Counter

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

var (
	_ bus.Metrics  = (*Node)(nil)
	_ pool.Metrics = (*Node)(nil)
)

// Buckets of the histograms, in seconds. A batch commits in milliseconds
// to a second or more (16,000 events while a backlog drains); a renewal is
// one statement, and past the lease TTL (3 s by default) it is too late.
var (
	applyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	renewBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5}
)

// New returns a node's metrics in a registry of their own, with the Go
// runtime's and the process's collectors.
func New() *Node {
	sessionLabels := []string{"source", "partition"}
	m := &Node{
		reg: prometheus.NewRegistry(),
		eventsCommitted: counterVec("bam_events_committed_total",
			"Events applied to activity instances in batches this node committed.", sessionLabels),
		eventsFailed: counterVec("bam_events_failed_total",
			"Events quarantined as failed events (malformed, too large, refused by their definition or by the store) in batches this node committed.", sessionLabels),
		recordsCommitted: counterVec("bam_records_committed_total",
			"Activity instance records written by batches this node committed (a batch's events coalesce into one record per instance).", sessionLabels),
		batchesCommitted: counterVec("bam_batches_committed_total",
			"Batches this node committed to the store, each with its checkpoint.", sessionLabels),
		batchesFailed: counterVec("bam_batches_failed_total",
			"Batches the store did not commit (an error, retried from the checkpoint; or refused by the fence: the session was lost).", sessionLabels),
		applyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bam_batch_apply_duration_seconds",
			Help:    "Time the store took to commit (or fail) one batch.",
			Buckets: applyBuckets,
		}, []string{"source"}),
		ownerChanges: counterVec("bam_session_owner_changes_total",
			"Sessions this node gained (cause claim, takeover_death, takeover_expiry) or gave up (handoff, lost).", []string{"source", "partition", "cause"}),
		renewDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bam_lease_renew_duration_seconds",
			Help:    "Time one renewal of all this node's leases (and its heartbeat) took, failed ones included.",
			Buckets: renewBuckets,
		}),
		renewFailures: counter("bam_lease_renew_failures_total",
			"Renewals of this node's leases that failed; past the lease's local deadline its sessions stop."),
		balanceRounds: counter("bam_balance_rounds_total",
			"Balance rounds this node ran, failed ones included."),
		balanceFailed: counter("bam_balance_round_failures_total",
			"Balance rounds of this node that failed (a store error); the next round starts from a fresh view."),
		balanceMoves: counter("bam_balance_moves_total",
			"Sessions this node's balance rounds began to hand over to a node below its share."),
		httpRequests: counterVec("bam_http_requests_total",
			"HTTP API requests answered, by route pattern and status code.", []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bam_http_request_duration_seconds",
			Help:    "Time to answer an HTTP API request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.eventsCommitted, m.eventsFailed, m.recordsCommitted, m.batchesCommitted, m.batchesFailed, m.applyDuration,
		m.ownerChanges, m.renewDuration, m.renewFailures, m.balanceRounds, m.balanceFailed, m.balanceMoves,
		m.httpRequests, m.httpDuration,
	)
	return m
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels []string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Registry returns the node's registry, to gather or to register more.
func (m *Node) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus's exposition formats. A
// collector that fails is reported in the answer's errors and the rest is
// served.
func (m *Node) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Session returns the recorder of one session's batches, its children
// resolved once (bus.Metrics).
func (m *Node) Session(id store.SessionID) bus.SessionMetrics {
	labels := prometheus.Labels{"source": id.Source, "partition": strconv.Itoa(id.Partition)}
	return &session{
		eventsCommitted:  m.eventsCommitted.With(labels),
		eventsFailed:     m.eventsFailed.With(labels),
		recordsCommitted: m.recordsCommitted.With(labels),
		batchesCommitted: m.batchesCommitted.With(labels),
		batchesFailed:    m.batchesFailed.With(labels),
		applyDuration:    m.applyDuration.WithLabelValues(id.Source),
	}
}

type session struct {
	eventsCommitted, eventsFailed, recordsCommitted, batchesCommitted, batchesFailed prometheus.Counter
	applyDuration                                                                    prometheus.Observer
}

func (s *session) Committed(events, records, failed int, took time.Duration) {
	s.batchesCommitted.Inc()
	s.eventsCommitted.Add(float64(events))
	s.recordsCommitted.Add(float64(records))
	s.eventsFailed.Add(float64(failed))
	s.applyDuration.Observe(took.Seconds())
}

func (s *session) Failed(took time.Duration) {
	s.batchesFailed.Inc()
	s.applyDuration.Observe(took.Seconds())
}

// OwnerChanged counts a session gained or given up (pool.Metrics).
func (m *Node) OwnerChanged(id store.SessionID, cause pool.OwnerChange) {
	m.ownerChanges.WithLabelValues(id.Source, strconv.Itoa(id.Partition), string(cause)).Inc()
}

// Renewed records a renewal of the node's leases (pool.Metrics).
func (m *Node) Renewed(took time.Duration, err error) {
	m.renewDuration.Observe(took.Seconds())
	if err != nil {
		m.renewFailures.Inc()
	}
}

// Balanced records a balance round (pool.Metrics).
func (m *Node) Balanced(handedOver int, err error) {
	m.balanceRounds.Inc()
	m.balanceMoves.Add(float64(handedOver))
	if err != nil {
		m.balanceFailed.Inc()
	}
}

// Request records an HTTP API request answered (httpapi.Metrics): route
// is the pattern that matched, empty when none did.
func (m *Node) Request(route string, code int, took time.Duration) {
	if route == "" {
		route = "none"
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(took.Seconds())
}
