// Package metrics is a node's Prometheus metrics: one registry per node
// (never the client library's global one, so that tests run several nodes
// in one process), the collectors, and the recorders that packages bus,
// pool and httpapi call through their own interfaces (bus.Metrics,
// pool.Metrics, httpapi.Metrics). bam serve serves the registry at
// /metrics, on its HTTP API and on its own --metrics listener.
// docs/OPERATIONS.md ("Metrics") lists every metric for the operator.
//
// # Names
//
// Every metric is named bam_…, in base units (seconds), counters end in
// _total. Labels are the source and the partition (bounded by the
// configuration), the cause of an owner change, an HTTP route pattern
// (never the raw path) and status code. No node id, instance id or event
// id is a label: the scraper's own instance label tells the nodes apart.
//
// # Who reports what, so that a pool scraped together adds up
//
// Counters and histograms count what this node did: its batches, its
// claims and losses, its renewals, its balance rounds, the HTTP requests
// it answered. Summed over the nodes (sum without (instance)) they are
// the pool's. A session's series live on every node that ran it, each
// counting its own batches: sum by (source, partition) over the nodes is
// the session's, across owner changes.
//
// An owner change is counted by the node it happened to: claim,
// takeover_death and takeover_expiry by the node that gained the session,
// handoff and lost by the node that gave it up. A clean handoff is thus a
// handoff on one node and a claim on another; a takeover after a SIGKILL
// is a takeover on the survivor only.
//
// Per-session gauges read from the store (backlog in events and in
// seconds, failed events outstanding) are reported by one node per
// session: its owner, the node that holds its lease in the store; or, for
// a session nobody owns (the pool or its source paused, no node working),
// the pool's reporter: the member with the smallest id among those that
// heartbeat within StoreOptions.LeaseTTL, so that a backlog that grows
// while nothing applies it still shows. Every node computes the same
// reporter from the same rows; a session between owners, or a reporter
// that just changed, may be reported twice for one scrape interval: a max
// over the nodes (max by (source, partition)) is the session's. A session
// that moves is reported by its new owner from its next refresh.
// bam_pool_sessions_unowned counts the sessions of applied sources nobody
// owns, and bam_pool_paused says whether the pool is paused; every node
// reports both, from the same store: read them with max (without
// (instance)), never sum. bam_sessions_owned is this node's count;
// summed, the pool's.
//
// # Gauges read from the store, at scrape time, without loading it
//
// A scrape never waits on the store for long and never counts without a
// bound: the store's gauges are read by one goroutine at a time, at most
// once per StoreOptions.CacheFor (default 5 s; scrapes in between get the
// last reading), under StoreOptions.Timeout (default 2 s). A reading is
// one read of the sessions and one of the members, one count of failed
// events per session (all also done by every balance round and bam
// status), and one bounded backlog count per session this node reports (ops.Backlogs.Bounded, as bam
// status and the HTTP API count them): a backlog past StoreOptions.Bound
// (default store.DefaultBacklogBound) reports the bound; its age is exact.
// A reading that fails or times out reports only what it read (nothing if
// the sessions could not be read; the other sessions' gauges if one
// pg-outbox database did not answer) and sets bam_session_gauges_up to 0
// (1 when the last reading worked): a stale value never looks fresh.
//
// # On the hot path
//
// A session resolves its label values once, when it starts
// (Node.Session), and records each batch with a few atomic adds: nothing
// per event, no allocation per batch. A node without metrics passes nil
// recorders, which record nothing (the benchmark compares both).
package metrics
