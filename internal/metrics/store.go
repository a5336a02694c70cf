package metrics

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// StoreOptions bounds what a scrape costs the store (doc.go, "Gauges read
// from the store"). Zero values take the defaults.
type StoreOptions struct {
	// CacheFor: scrapes within this long of a reading get it again.
	// Default 5s.
	CacheFor time.Duration
	// Timeout bounds one reading. Default 2s.
	Timeout time.Duration
	// Bound: a backlog is counted up to this many events. Default
	// store.DefaultBacklogBound.
	Bound int64
	// LeaseTTL: a member that heartbeat within it may be the pool's
	// reporter of the sessions nobody owns (doc.go). Default 3s, the
	// pool's default.
	LeaseTTL time.Duration
}

// Owner is the node whose sessions' gauges are reported: *pool.Node.
type Owner interface {
	ID() string
	Owned() int
}

// WatchNode registers the gauges of a node: the sessions it runs, and
// those read from st at scrape time for the sessions it owns in the store,
// with the pool's unowned sessions.
func (m *Node) WatchNode(st store.Store, node Owner, opts StoreOptions) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bam_sessions_owned",
		Help: "Sessions this node runs now.",
	}, func() float64 { return float64(node.Owned()) }))
	m.reg.MustRegister(newStoreGauges(st, node.ID(), opts))
}

var (
	sessionLabels  = []string{"source", "partition"}
	backlogEvents  = prometheus.NewDesc("bam_session_backlog_events", "Events written to the session's source and not applied yet, counted up to a bound (reported by the session's owner, or by the pool's reporter when nobody owns it: read with max).", sessionLabels, nil)
	backlogAge     = prometheus.NewDesc("bam_session_backlog_age_seconds", "How long the oldest event not applied yet has waited, by the clock of the database that holds it; 0 when none waits (reported by the session's owner, or by the pool's reporter when nobody owns it: read with max).", sessionLabels, nil)
	failedPending  = prometheus.NewDesc("bam_session_failed_events_outstanding", "Failed events of the session still to retry or discard (reported by the session's owner, or by the pool's reporter when nobody owns it: read with max).", sessionLabels, nil)
	unowned        = prometheus.NewDesc("bam_pool_sessions_unowned", "Sessions of applied sources that no node holds a lease on (every node reports it: read it with max, not sum).", nil, nil)
	poolPaused     = prometheus.NewDesc("bam_pool_paused", "1 while the whole pool is paused (bam pause): no session is applied, and the pool's reporter reports the session gauges (every node reports it: read it with max).", nil, nil)
	storeGaugesUp  = prometheus.NewDesc("bam_session_gauges_up", "1 when the last reading of the store for the session gauges worked; 0 when it failed, and the gauges it could not read are not reported.", nil, nil)
	storeGaugeDesc = []*prometheus.Desc{backlogEvents, backlogAge, failedPending, unowned, poolPaused, storeGaugesUp}
)

// storeGauges reads the session gauges from the store when scraped, at
// most once per CacheFor.
type storeGauges struct {
	st   store.Store
	node string
	opts StoreOptions

	mu      sync.Mutex // one reading at a time; guards what follows
	readAt  time.Time
	reading []prometheus.Metric
}

func newStoreGauges(st store.Store, node string, opts StoreOptions) *storeGauges {
	opts.CacheFor = cmp.Or(opts.CacheFor, 5*time.Second)
	opts.Timeout = cmp.Or(opts.Timeout, 2*time.Second)
	opts.Bound = cmp.Or(opts.Bound, store.DefaultBacklogBound)
	opts.LeaseTTL = cmp.Or(opts.LeaseTTL, 3*time.Second)
	return &storeGauges{st: st, node: node, opts: opts}
}

func (g *storeGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range storeGaugeDesc {
		ch <- d
	}
}

func (g *storeGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reading == nil || time.Since(g.readAt) >= g.opts.CacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), g.opts.Timeout)
		read, err := g.read(ctx)
		cancel()
		up := 1.0
		if err != nil {
			up = 0
		}
		g.reading = append(read, prometheus.MustNewConstMetric(storeGaugesUp, prometheus.GaugeValue, up))
		g.readAt = time.Now()
	}
	for _, m := range g.reading {
		ch <- m
	}
}

// read reads the gauges: the sessions, their failed events outstanding,
// and a bounded backlog of each session this node owns. On an error it
// returns what it could read: nothing when the sessions could not be read,
// the others when one backlog could not be counted.
func (g *storeGauges) read(ctx context.Context) ([]prometheus.Metric, error) {
	sessions, err := g.st.Sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	failed, err := g.st.FailedOutstanding(ctx)
	if err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	nodes, err := g.st.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	reporter := g.node == poolReporter(nodes, g.opts.LeaseTTL)
	backlogs := ops.NewBacklogs(g.st)
	defer backlogs.Close()
	var (
		out     []prometheus.Metric
		partial error // the last backlog that could not be counted
		free    int
		paused  float64
	)
	for _, se := range sessions {
		if se.PoolPaused {
			paused = 1 // every row says it: the pause is pool-wide
		}
		held := se.Owner != "" && se.LeaseRemaining > 0
		if !held && se.Applies() {
			free++
		}
		// Reported by its owner; when nobody owns it, by the reporter.
		if (held && se.Owner != g.node) || (!held && !reporter) {
			continue
		}
		labels := []string{se.Source, strconv.Itoa(se.Partition)}
		out = append(out, prometheus.MustNewConstMetric(failedPending, prometheus.GaugeValue, float64(failed[se.SessionID]), labels...))
		bl, err := backlogs.Bounded(ctx, se, g.opts.Bound)
		if err != nil {
			// A pg-outbox database that does not answer costs its own
			// sessions' backlog, not the other gauges.
			partial = fmt.Errorf("count the backlog of %s/%d: %w", se.Source, se.Partition, err)
			continue
		}
		out = append(out,
			prometheus.MustNewConstMetric(backlogEvents, prometheus.GaugeValue, float64(bl.Events), labels...),
			prometheus.MustNewConstMetric(backlogAge, prometheus.GaugeValue, bl.OldestAge.Seconds(), labels...))
	}
	if reporter {
		// Failed events kept under no current session (a partition
		// repartitioned away, a removed source, direct writes) are the
		// reporter's too: no owner would ever report them.
		for _, u := range ops.UnfiledFailed(sessions, failed) {
			out = append(out, prometheus.MustNewConstMetric(failedPending, prometheus.GaugeValue, float64(u.Count), u.Source, strconv.Itoa(u.Partition)))
		}
	}
	return append(out, prometheus.MustNewConstMetric(unowned, prometheus.GaugeValue, float64(free)),
		prometheus.MustNewConstMetric(poolPaused, prometheus.GaugeValue, paused)), partial
}

// poolReporter is the member that reports the gauges of the sessions
// nobody owns: the smallest id among those whose heartbeat is younger
// than ttl by the store's clock; "" when there is none.
func poolReporter(nodes []store.NodeRow, ttl time.Duration) string {
	reporter := ""
	for _, n := range nodes {
		if n.HeartbeatAge <= ttl && (reporter == "" || n.ID < reporter) {
			reporter = n.ID
		}
	}
	return reporter
}
