// Package benchrun holds what the commands that run bench/ share: a
// parser of `go test -bench` output (plain or -json, from go test or a
// test binary run directly) that tells each benchmark's metrics over the
// runs, its skips and failures; the median, min and max of a metric and
// how a figure is written for a reader; and the machine the benchmarks
// ran on. bench/report renders one run of the suite with it, bench/compare
// two versions of bam measured against each other.
package benchrun
