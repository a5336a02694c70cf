package lease

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

var row = store.Lease{SessionID: store.SessionID{Source: "orders", Partition: 3}, Epoch: 7}

// The tests run in synctest bubbles: time is the bubble's fake clock, and
// synctest.Wait lets every timer that is due fire, so nothing sleeps.

func TestHeldUntilTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(t.Context(), row, time.Now().Add(2*time.Second))
		if l.Row() != row {
			t.Fatalf("Row = %+v", l.Row())
		}
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if !l.Trusted() || l.Ctx().Err() != nil {
			t.Fatal("ended before its deadline")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if l.Trusted() {
			t.Fatal("trusted at its deadline")
		}
		select {
		case <-l.Done():
		default:
			t.Fatal("Done still open at the deadline")
		}
		if c := context.Cause(l.Ctx()); !errors.Is(c, ErrExpired) {
			t.Fatalf("cause %v, want ErrExpired", c)
		}
	})
}

func TestExtendMovesTheDeadlineForwardOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		l := New(t.Context(), row, start.Add(2*time.Second))
		time.Sleep(time.Second)
		if !l.Extend(start.Add(4 * time.Second)) {
			t.Fatal("Extend of a held lease = false")
		}
		if !l.Extend(start.Add(3 * time.Second)) { // earlier: ignored, still held
			t.Fatal("Extend = false")
		}
		if d := l.Deadline(); !d.Equal(start.Add(4 * time.Second)) {
			t.Fatalf("deadline %v after start, want 4s", d.Sub(start))
		}
		time.Sleep(2*time.Second + time.Millisecond) // past the first deadline
		synctest.Wait()
		if !l.Trusted() {
			t.Fatal("ended at the deadline an Extend moved")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if l.Trusted() || !errors.Is(context.Cause(l.Ctx()), ErrExpired) {
			t.Fatalf("at 4s: trusted %v, cause %v; want ended, ErrExpired", l.Trusted(), context.Cause(l.Ctx()))
		}
	})
}

// TestEndedStaysEnded: a renewal that returns after the deadline passed
// cannot revive the lease.
func TestEndedStaysEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(t.Context(), row, time.Now().Add(time.Second))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if l.Extend(time.Now().Add(time.Hour)) {
			t.Fatal("Extend revived an expired lease")
		}
		if l.Trusted() {
			t.Fatal("an expired lease is trusted again")
		}
	})
}

func TestLoseAndEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handover := errors.New("handed over")
		for _, c := range []struct {
			name string
			end  func(*Lease)
			want error
		}{
			{"lose", func(l *Lease) { l.Lose(nil) }, ErrLost},
			{"lose with a cause", func(l *Lease) { l.Lose(handover) }, handover},
			{"end", func(l *Lease) { l.End(handover) }, handover},
		} {
			l := New(t.Context(), row, time.Now().Add(time.Hour))
			c.end(l)
			if l.Trusted() || !errors.Is(context.Cause(l.Ctx()), c.want) {
				t.Errorf("%s: trusted %v, cause %v; want ended, %v", c.name, l.Trusted(), context.Cause(l.Ctx()), c.want)
			}
			if l.Extend(time.Now().Add(2 * time.Hour)) {
				t.Errorf("%s: Extend revived it", c.name)
			}
			l.End(errors.New("later")) // the first cause stays
			if !errors.Is(context.Cause(l.Ctx()), c.want) {
				t.Errorf("%s: cause changed to %v", c.name, context.Cause(l.Ctx()))
			}
		}
	})
}

func TestEndsWithItsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, stop := context.WithCancel(t.Context())
		l := New(parent, row, time.Now().Add(time.Hour))
		stop()
		synctest.Wait()
		if l.Trusted() || !errors.Is(l.Ctx().Err(), context.Canceled) {
			t.Fatalf("after the parent ended: trusted %v, err %v", l.Trusted(), l.Ctx().Err())
		}
	})
}

// TestRenewalInFlightHoldsTheEnd: a renewal that begins before the
// deadline and returns after it keeps the lease when it succeeded (its
// Extend moves the deadline), ends it when it failed; meanwhile the lease
// is not trusted.
func TestRenewalInFlightHoldsTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, ok := range []bool{true, false} {
			began := time.Now()
			l := New(t.Context(), row, began.Add(time.Second))
			l.Renewing()
			time.Sleep(1500 * time.Millisecond) // past the deadline, renewal still out
			synctest.Wait()
			if l.Ctx().Err() != nil {
				t.Fatalf("ok=%v: ended while a renewal begun before its deadline was in flight", ok)
			}
			if l.Trusted() {
				t.Fatalf("ok=%v: trusted past its deadline", ok)
			}
			if ok {
				l.Extend(began.Add(3 * time.Second))
			}
			l.RenewDone()
			synctest.Wait()
			if ended := l.Ctx().Err() != nil; ended == ok {
				t.Fatalf("renewal ok=%v: ended=%v", ok, ended)
			}
			if ok && !l.Trusted() {
				t.Fatal("not trusted after a successful renewal")
			}
			if ok {
				time.Sleep(1500 * time.Millisecond) // past the extended deadline
				synctest.Wait()
				if !errors.Is(context.Cause(l.Ctx()), ErrExpired) {
					t.Fatalf("past the extended deadline: %v", context.Cause(l.Ctx()))
				}
			}
		}
	})
}
