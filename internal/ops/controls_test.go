package ops

import (
	"errors"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/store"
)

func TestFindNode(t *testing.T) {
	nodes := []store.NodeRow{{ID: "a1", Name: "bam-1"}, {ID: "b2", Name: "bam-2"}, {ID: "c3", Name: "bam-2"}}
	for _, c := range []struct{ arg, id string }{{"a1", "a1"}, {"bam-1", "a1"}, {"c3", "c3"}} {
		if n, err := FindNode(nodes, c.arg); err != nil || n.ID != c.id {
			t.Errorf("FindNode(%q) = %s, %v; want %s", c.arg, n.ID, err, c.id)
		}
	}
	// One suggestion, in the sentence (it once read "pool;  (did you mean").
	_, err := FindNode(nodes, "bam-3")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `no node "bam-3" in the pool (did you mean bam-1?); see bam status: not found` {
		t.Errorf("FindNode(bam-3) = %v", err)
	}
	var invalid *InvalidError
	if _, err := FindNode(nodes, "bam-2"); !errors.As(err, &invalid) || !strings.Contains(err.Error(), "2 nodes are named \"bam-2\": name one by its id (b2, c3)") {
		t.Errorf("FindNode(bam-2), a name two nodes have = %v", err)
	}
	if _, err := FindNode(nil, "bam-1"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "no bam serve is running") {
		t.Errorf("FindNode in an empty pool = %v", err)
	}
}

func TestParseSession(t *testing.T) {
	if id, err := ParseSession("orders/3"); err != nil || id != (store.SessionID{Source: "orders", Partition: 3}) {
		t.Errorf("ParseSession(orders/3) = %+v, %v", id, err)
	}
	for _, bad := range []string{"orders", "orders/", "/3", "orders/-1", "orders/x"} {
		if _, err := ParseSession(bad); err == nil || !strings.Contains(err.Error(), "SOURCE/PARTITION") {
			t.Errorf("ParseSession(%q) = %v, want a refusal that shows the form", bad, err)
		}
	}
}
