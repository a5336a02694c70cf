// Package testwait is the one way tests wait for a condition that another
// goroutine or process will make true: poll it, with a deadline, and fail
// the test saying what was awaited. It never sleeps a fixed time hoping
// that something happened by then.
//
// Inside a testing/synctest bubble its polls advance the bubble's fake
// clock, so the same call serves the fake-clock unit tests and the tests
// of real processes and servers.
package testwait

import (
	"testing"
	"time"
)

// maxPoll is the longest pause between two looks at a condition: short
// next to what the tests wait for, long enough that a condition that
// queries a store does not load it.
const maxPoll = 20 * time.Millisecond

// Until polls cond until it holds and returns how long that took; it fails
// t (Fatalf, "waited LIMIT for WHAT") if cond still does not hold after
// limit. It looks at once, then after 1 ms, doubling the pause up to
// 20 ms.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for pause := time.Millisecond; !cond(); pause = min(2*pause, maxPoll) {
		if time.Since(start) > limit {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(pause)
	}
	return time.Since(start)
}
