// Package testproc runs real `bam` processes for the code that needs them
// outside the product's own logic: the process tests (test/e2e), the
// benchmarks (bench), the chaos harness (internal/chaos), the examples'
// tests, and `bam demo`, which plays the seed scenario with real nodes. They
// all start, signal and stop `bam serve` the same way, through Proc:
//
//	p, err := testproc.Start(testproc.Config{Path: bam, Args: args, LogFile: path})
//	id, joined, err := p.WaitJoined(20 * time.Second) // its "node joined the pool" line
//	p.Pause(); p.Resume()                            // SIGSTOP, SIGCONT
//	err = p.Stop(15 * time.Second)                   // SIGTERM, then SIGKILL past the limit
//	p.Kill()                                         // SIGKILL, and wait until it is gone
//
// A process started here dies with the process that started it, however
// that one ends (SIGKILL included; Linux): a test, a benchmark or a demo
// that is killed leaves no node behind holding leases. StartTest is Start
// for a test, which kills the process when the test ends and shows its log
// when the test failed.
//
// It also reads what the processes leave: their JSON log lines (LogLines)
// and whether a paused one holds a SQLite store's write lock
// (HoldsSQLiteWriteLock). It does not import package testing, so that bam
// does not link it.
package testproc
