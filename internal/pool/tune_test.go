package pool

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store/memstore"
)

// Tune changes what the next round, hand-over check and batch use, and
// refuses a value out of range without changing anything.
func TestTuneChangesTheLiveSettings(t *testing.T) {
	n, err := NewNode(memstore.New(), DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := Live{BalanceInterval: 2 * time.Second, MaxMovesPerRound: 4, SourceGiveUp: time.Minute, MaxEventSize: 300}
	if err := n.Tune(want); err != nil {
		t.Fatal(err)
	}
	if got := n.live(); got != want || n.cfg.Session.CurrentMaxEventSize() != 300 {
		t.Fatalf("live = %+v, sessions' size %d; want %+v", got, n.cfg.Session.CurrentMaxEventSize(), want)
	}
	select {
	case <-n.balanceNow: // the balance loop reschedules on the new interval
	default:
		t.Error("Tune did not wake the balance loop")
	}
	bad := want
	bad.MaxMovesPerRound = 0
	var ce *ConfigError
	if err := n.Tune(bad); !errors.As(err, &ce) || ce.Field != "MaxMovesPerRound" {
		t.Fatalf("Tune with no moves = %v, want a ConfigError on MaxMovesPerRound", err)
	}
	if n.live() != want {
		t.Fatalf("a refused Tune changed the settings: %+v", n.live())
	}
}
