package testproc

import "path/filepath"

// TB is what StartTest needs of a test or a benchmark; testing.TB has it.
// (Taking the interface keeps package testing out of bam, which runs
// processes through this package too.)
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Failed() bool
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// StartTest starts the process for t and fails t if it cannot. Its log
// goes to NAME.log in a temporary directory when cfg.LogFile is not set.
// When t ends the process is killed (SIGKILL; a test that wants a clean
// stop calls Stop first, or in a Cleanup of its own registered after this
// one), and its log is shown if t failed.
func StartTest(t TB, cfg Config) *Proc {
	t.Helper()
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(t.TempDir(), cfg.Name+".log")
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.name, readAll(p.log))
		}
	})
	return p
}
