package check

import (
	"slices"
	"sort"
)

// AlertState is what the store kept of the workload's alert, an instance
// alert whose condition holds for an instance once its fifth event is
// applied and for ever after (its item e5 is set and never unset), and
// what the harness's webhook receiver got of its deliveries.
type AlertState struct {
	// Matching are the ids of the instances the condition holds for at
	// the end of the run.
	Matching []string
	// Firings are every firing of the alert the store keeps.
	Firings []AlertFiring
	// Received counts, per delivery id, the requests the receiver
	// accepted (2xx).
	Received map[string]int
	// Refused counts the requests the receiver refused on purpose (503),
	// for the deliveries to be retried.
	Refused int
}

// AlertFiring is a firing of the workload's alert.
type AlertFiring struct {
	Key        string // the instance id
	Cleared    bool
	Deliveries []AlertDelivery
}

// AlertDelivery is a delivery of a firing, as the store records it.
type AlertDelivery struct {
	ID    string
	State string // pending, delivered or failed
}

// checkAlert holds the workload's alert to its promises: every instance
// its condition holds for fired exactly once and was never cleared (the
// condition never stops holding), no instance it does not hold for
// fired, every delivery was delivered and reached the receiver, and the
// receiver got no delivery the store does not know. Repeats of a delivery
// are allowed (at least once) and counted.
func (c *checker) checkAlert() {
	a := c.s.Alert
	if a == nil {
		return
	}
	matching := map[string]bool{}
	for _, id := range a.Matching {
		matching[id] = true
	}
	fired := map[string]int{}
	known := map[string]bool{}
	for _, f := range a.Firings {
		fired[f.Key]++
		c.r.AlertFirings++
		switch {
		case !matching[f.Key]:
			c.add(KindAlert, "instance %s fired, but the alert's condition does not hold for it", f.Key)
		case f.Cleared:
			c.add(KindAlert, "a firing of instance %s was cleared, but the condition still holds for it", f.Key)
		}
		for _, d := range f.Deliveries {
			known[d.ID] = true
			c.r.AlertDeliveries++
			switch n := a.Received[d.ID]; {
			case d.State != "delivered":
				c.add(KindAlert, "delivery %s of instance %s is %s, not delivered", d.ID, f.Key, d.State)
			case n == 0:
				c.add(KindAlert, "delivery %s of instance %s is recorded delivered, but the receiver never accepted it", d.ID, f.Key)
			default:
				c.r.AlertRepeats += n - 1
			}
		}
	}
	keys := make([]string, 0, len(fired))
	for k := range fired {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fired[k] > 1 {
			c.add(KindAlert, "instance %s fired %d times; its condition never stopped holding", k, fired[k])
		}
	}
	missed := slices.Sorted(func(yield func(string) bool) {
		for id := range matching {
			if fired[id] == 0 && !yield(id) {
				return
			}
		}
	})
	for _, id := range missed {
		c.add(KindAlert, "instance %s matches the alert but never fired", id)
	}
	ids := make([]string, 0, len(a.Received))
	for id := range a.Received {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !known[id] {
			c.add(KindAlert, "the receiver accepted delivery %s, which the store does not know", id)
		}
	}
	c.r.AlertRefused = a.Refused
}
