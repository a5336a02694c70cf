// Package bench holds the benchmarks of the event bus, run with Go's
// benchmark harness (they never run under a plain `go test`):
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/
//
// BenchmarkDrain drains a pre-filled buffer source with an in-process node
// and measures, in the same run, what the database itself can do with the
// same rows (PostgreSQL COPY, a bare batched SQLite INSERT, set-based
// upserts, one upsert per transaction). BenchmarkFailover,
// BenchmarkFailoverPaused and BenchmarkHandoff start real `bam serve`
// processes with the default settings and time SIGKILL, SIGSTOP, a join
// and a SIGTERM from the outside, by watching the sessions in the store.
// BenchmarkFailoverPaused tells pauses inside a transaction (on SQLite,
// holding the file's write lock) from the others, and counts how often a
// random pause lands inside one. BenchmarkFailoverMidBatch pauses a node
// in the middle of sending a batch (its link cut halfway through the
// request by a fault proxy), beside an ordinary pause of the same node in
// the same run. BenchmarkDrainSteps times the steps of a
// batch, to show where a drain's time goes.
//
// BenchmarkDrainOutbox is BenchmarkDrain with a pg-outbox source (an
// outbox table in the application's PostgreSQL database, trimmed as it
// drains) into either store, beside a COPY of the same rows and the naive
// relay. BenchmarkBalance runs 50 in-process nodes against a real store
// over 1,000 sessions, from all free and from one node holding everything,
// and measures the rounds and moves to balance, the moves once balanced,
// and the store calls per node and balance interval of the idle pool
// (through a counting store.Store). BenchmarkNodeMemory samples the
// resident memory of one `bam serve` draining 64 sessions at full
// throughput, beside the same process idle. BenchmarkSearch times package
// search's queries over a million instances on both stores beside the same
// queries written by hand, checking their rows and plans.
// BenchmarkDrainMetrics is BenchmarkDrain with the node's Prometheus
// metrics off and on (scraped every second), in the same run: on/off is
// what they cost the bus.
//
// Every figure is reported with b.ReportMetric next to a baseline measured
// in the same run, since the test machine is shared and noisy.
// docs/BENCHMARKS.md holds the figures, the targets and how to rerun.
package bench
