package ops

import (
	"slices"
	"testing"

	"github.com/bam-dev/bam/internal/store"
)

func TestUnfiledFailed(t *testing.T) {
	sessions := []store.SessionRow{{SessionID: store.SessionID{Source: "orders", Partition: 0}}}
	outstanding := map[store.SessionID]int64{
		{Source: "orders", Partition: 0}: 2, // filed: its session exists
		{Source: "orders", Partition: 3}: 1,
		{Source: "gone", Partition: 0}:   4,
		{Source: store.DirectSource}:     5,
		{Source: "orders", Partition: 1}: 0,
	}
	got := UnfiledFailed(sessions, outstanding)
	want := []Unfiled{
		{store.SessionID{Source: store.DirectSource}, 5, "written directly to the store, through no source"},
		{store.SessionID{Source: "gone"}, 4, "of source gone, which no longer exists"},
		{store.SessionID{Source: "orders", Partition: 3}, 1, "of partition 3, which source orders no longer has (repartitioned)"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("UnfiledFailed =\n%+v\nwant\n%+v", got, want)
	}
}
