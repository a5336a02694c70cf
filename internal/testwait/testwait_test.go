package testwait

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestUntil: Until returns once the condition holds, after how long it
// took; it runs on a synctest bubble's fake clock like any test code.
func TestUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done atomic.Bool
		time.AfterFunc(300*time.Millisecond, func() { done.Store(true) })
		took := Until(t, time.Second, "the timer", done.Load)
		if took < 300*time.Millisecond || took > 300*time.Millisecond+maxPoll {
			t.Errorf("Until returned after %v; want within %v of 300ms", took, maxPoll)
		}
	})
}

// fatalT records a Fatalf instead of ending the test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

// TestUntilFailsAfterLimit: a condition that never holds fails the test
// once the limit has passed, not before.
func TestUntilFailsAfterLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fatalT{TB: t}
		start := time.Now()
		func() {
			defer func() {
				if r := recover(); r != ft {
					t.Fatalf("Until did not fail the test (recovered %v)", r)
				}
			}()
			Until(ft, time.Second, "nothing", func() bool { return false })
		}()
		if took := time.Since(start); took < time.Second {
			t.Errorf("Until failed after %v, before its limit of 1s", took)
		}
	})
}
