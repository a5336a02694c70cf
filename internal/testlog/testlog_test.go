package testlog

import (
	"io"
	"log/slog"
	"testing"
)

// TestCount counts lines by message and "why", attributes added by With
// included.
func TestCount(t *testing.T) {
	lines, log := Capture(slog.NewTextHandler(io.Discard, nil))
	log = log.With("why", "lost")
	log.Info("stopped")
	log.Info("stopped")
	log.Info("started", "why", "claimed")
	slog.New(slog.NewTextHandler(io.Discard, nil)).Info("stopped") // another logger
	if n := lines.Count("stopped", ""); n != 2 {
		t.Errorf("Count(stopped) = %d, want 2", n)
	}
	if n := lines.Count("stopped", "lost"); n != 2 {
		t.Errorf("Count(stopped, lost) = %d, want 2", n)
	}
	if n := lines.Count("started", "lost"); n != 0 {
		t.Errorf("Count(started, lost) = %d, want 0 (its own why wins)", n)
	}
	if n := lines.Count("started", "claimed"); n != 1 {
		t.Errorf("Count(started, claimed) = %d, want 1", n)
	}
}
