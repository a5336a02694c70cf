package source

import (
	"errors"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

func TestCheckSegment(t *testing.T) {
	begin := event.Event{Activity: "PO", Instance: "PO-1", Kind: event.Begin}
	cont := event.Event{Activity: "PO", Continuation: "ship-7", Kind: event.Update}
	for _, c := range []struct {
		segment string
		ev      event.Event
		bad     string // "" when accepted, else a word the reason must hold
	}{
		{"", begin, ""},            // a source that keeps no segment apart
		{"PO-1", begin, ""},        // the instance
		{"ship-7", cont, ""},       // a continuation's token
		{"PO-2", begin, `"PO-1"`},  // another instance
		{"PO-1", cont, "token"},    // the instance, for an event of a continuation
		{"ship-8", cont, "ship-7"}, // another token
	} {
		err := CheckSegment(store.Record{Segment: c.segment}, c.ev)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("segment %q, event of %q: %v, want accepted", c.segment, c.ev.Segment(), err)
		case c.bad != "" && (!errors.As(err, new(*event.Error)) || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "instance_id")):
			t.Errorf("segment %q, event of %q: %v, want an *event.Error on instance_id naming %s", c.segment, c.ev.Segment(), err, c.bad)
		}
	}
}
