package bus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// TestSourceTrouble: a source's failures are trouble that another node may
// not have, from the first one until a batch works; a store's failures and
// a source that halted on purpose are not.
func TestSourceTrouble(t *testing.T) {
	s := &Session{}
	unreachable := fmt.Errorf("read source: %w", &sourceError{errors.New("dial tcp: connection refused")})
	s.noteSource(unreachable)
	first, msg := s.SourceTrouble()
	if first.IsZero() || msg != unreachable.Error() {
		t.Fatalf("after a source error: since %v, %q", first, msg)
	}
	s.noteSource(errors.New("apply batch: store unreachable")) // the store's, not the source's
	if since, _ := s.SourceTrouble(); !since.Equal(first) {
		t.Fatalf("a store error moved the trouble's start: %v, want %v", since, first)
	}
	s.noteSource(unreachable)
	if since, _ := s.SourceTrouble(); !since.Equal(first) {
		t.Fatalf("trouble restarted at %v, want it kept since %v", since, first)
	}
	s.noteSource(nil)
	if since, msg := s.SourceTrouble(); !since.IsZero() || msg != "" {
		t.Fatalf("after a batch that worked: since %v, %q", since, msg)
	}
	for _, halted := range []error{
		fmt.Errorf("read source: %w", &sourceError{fmt.Errorf("pg-outbox: %w", source.ErrHalted)}),
		fmt.Errorf("read source: %w", &sourceError{fmt.Errorf("pg-outbox: %w: %w", store.ErrOutboxChanged, source.ErrHalted)}),
	} {
		s.noteSource(halted)
		if since, _ := s.SourceTrouble(); !since.IsZero() {
			t.Errorf("a halted source is trouble: %v", halted)
		}
	}
}

// TestProgress: every failed batch counts, from the first one until a
// batch works, whatever failed; a batch that works clears it.
func TestProgress(t *testing.T) {
	s := &Session{}
	if p := s.Progress(); !p.FailingSince.IsZero() || p.Failures != 0 || !p.LastSuccess.IsZero() {
		t.Fatalf("a new session: %+v", p)
	}
	s.noteProgress(errors.New("apply batch: database is locked"))
	first := s.Progress()
	if first.FailingSince.IsZero() || first.Failures != 1 || first.LastError != "apply batch: database is locked" {
		t.Fatalf("after a failure: %+v", first)
	}
	s.noteProgress(fmt.Errorf("read source: %w", &sourceError{errors.New("connection refused")}))
	if p := s.Progress(); !p.FailingSince.Equal(first.FailingSince) || p.Failures != 2 || p.LastError != "read source: connection refused" {
		t.Fatalf("after a second failure: %+v, want failing since %v", p, first.FailingSince)
	}
	s.noteProgress(nil)
	if p := s.Progress(); !p.FailingSince.IsZero() || p.Failures != 0 || p.LastError != "" || p.LastSuccess.Before(first.FailingSince) {
		t.Fatalf("after a batch that worked: %+v", p)
	}
}
