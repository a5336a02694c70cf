package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestOperatorControlsUnderLoad runs the operator's commands against a
// pool of three real nodes while a writer writes: bam pause holds every
// checkpoint while the writes wait in the source, and bam resume applies
// them; bam node drain empties a node that stays up; bam session move
// hands one session to a chosen node; and through all of it every
// acknowledged event is applied exactly once, in order. Each command is
// in the audit log.
func TestOperatorControlsUnderLoad(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "orders", "--kind", "buffer", "--partitions", "6")
		st := openStore(t, url)
		ctx := context.Background()

		na, nb, nc := startNode(t, url, "node-a"), startNode(t, url, "node-b"), startNode(t, url, "node-c")
		ida, idb, idc := na.id(t), nb.id(t), nc.id(t)
		testwait.Until(t, 15*time.Second, "the three nodes to share the six sessions", func() bool {
			return ownedBy(t, st, ida) == 2 && ownedBy(t, st, idb) == 2 && ownedBy(t, st, idc) == 2
		})
		w, stopWriting := startWriter(t, st, map[string]int{"orders": 6})
		time.Sleep(300 * time.Millisecond)

		// Pause: every session stops after its batch and is released; the
		// checkpoints hold while the writer goes on writing.
		out := bam(t, url, "pause")
		if !strings.Contains(out, "pool paused") {
			t.Fatalf("bam pause said %q", out)
		}
		held := owners(t, st)
		for id, s := range held {
			if s.Owner != "" && s.LeaseRemaining > 0 {
				t.Errorf("session %v still owned by %s after bam pause returned", id, s.Owner)
			}
		}
		written := w.count()
		time.Sleep(time.Second)
		if w.count() == written {
			t.Fatal("the writer wrote nothing while the pool was paused: writers must keep writing")
		}
		backlog := int64(0)
		for id, s := range owners(t, st) {
			if s.Checkpoint != held[id].Checkpoint || s.Epoch != held[id].Epoch || (s.Owner != "" && s.LeaseRemaining > 0) {
				t.Errorf("session %v moved while the pool was paused: %+v, was %+v", id, s, held[id])
			}
			n, err := st.BufferBacklog(ctx, id, s.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			backlog += n
		}
		if backlog == 0 {
			t.Error("no backlog built up while the pool was paused")
		}
		var status struct {
			Paused   bool   `json:"paused"`
			PausedBy string `json:"paused_by"`
		}
		if err := json.Unmarshal([]byte(bam(t, url, "status", "--json")), &status); err != nil || !status.Paused || status.PausedBy == "" {
			t.Errorf("bam status --json while paused: %+v, %v; want paused, with who", status, err)
		}
		bam(t, url, "resume")
		testwait.Until(t, 15*time.Second, "the nodes to take the sessions back after bam resume", func() bool {
			return ownedBy(t, st, ida)+ownedBy(t, st, idb)+ownedBy(t, st, idc) == 6
		})
		t.Logf("paused for 1 s with %d events waiting; resumed", backlog)

		// Drain node a: it hands its sessions over and stays up.
		out = bam(t, url, "node", "drain", "node-a")
		if !strings.Contains(out, "drained") {
			t.Fatalf("bam node drain said %q", out)
		}
		if n := ownedBy(t, st, ida); n != 0 {
			t.Errorf("node a holds %d sessions after bam node drain returned", n)
		}
		if n := ownedBy(t, st, idb) + ownedBy(t, st, idc); n != 6 {
			t.Errorf("nodes b and c hold %d sessions after the drain, want all 6", n)
		}
		time.Sleep(500 * time.Millisecond) // balance rounds pass: nothing comes back to a
		if n := ownedBy(t, st, ida); n != 0 {
			t.Errorf("node a, draining, claimed %d sessions", n)
		}
		if err := na.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("node a is not running after its drain: %v", err)
		}
		if n := na.logged(t, "node draining: an operator drained it (bam node drain); handing every session over, claiming none, staying up"); n != 1 {
			t.Errorf("node a logged its drain %d times, want 1", n)
		}

		// A draining node takes no moved session; once undrained it does.
		if out, err := bamErr(url, "session", "move", "orders/0", "--to", ida); err == nil || !strings.Contains(out, "draining") {
			t.Errorf("bam session move to a draining node: %v, %q; want a refusal that says it is draining", err, out)
		}
		bam(t, url, "node", "undrain", ida)
		testwait.Until(t, 15*time.Second, "node a to take its share again", func() bool { return ownedBy(t, st, ida) == 2 })
		// Move a session of node b's to node a.
		var pick store.SessionID
		for id, s := range owners(t, st) {
			if s.Owner == idb {
				pick = id
			}
		}
		name := fmt.Sprintf("orders/%d", pick.Partition)
		out = bam(t, url, "session", "move", name, "--to", "node-a")
		if !strings.Contains(out, "moved from "+idb+" to "+ida) {
			t.Fatalf("bam session move said %q", out)
		}
		moved := owners(t, st)[pick]
		if moved.Owner != ida {
			t.Errorf("%s is owned by %s after the move, want node a %s", name, moved.Owner, ida)
		}
		time.Sleep(time.Second) // the pool evens out around the moved session
		if s := owners(t, st)[moved.SessionID]; s.Owner != ida || s.Epoch != moved.Epoch {
			t.Errorf("%s did not stay where it was moved: owner %s epoch %d, moved to %s at epoch %d", name, s.Owner, s.Epoch, ida, moved.Epoch)
		}
		testwait.Until(t, 15*time.Second, "the pool to even out again", func() bool {
			return ownedBy(t, st, ida) == 2 && ownedBy(t, st, idb) == 2 && ownedBy(t, st, idc) == 2
		})

		stopWriting()
		w.check(t)

		var audit []struct {
			Action string `json:"action"`
			Target string `json:"target"`
			Who    string `json:"who"`
		}
		if err := json.Unmarshal([]byte(bam(t, url, "audit", "--json")), &audit); err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range audit {
			actions = append(actions, e.Action+" "+e.Target)
			if !strings.Contains(e.Who, "@") {
				t.Errorf("audit entry %+v: who is not user@host", e)
			}
		}
		want := []string{"session move " + name, "node undrain " + ida, "node drain " + ida, "resume ", "pause ", "source add orders"}
		if strings.Join(actions, ",") != strings.Join(want, ",") {
			t.Errorf("audit log = %q, want %q", actions, want)
		}
	})
}

// bamErr runs a bam command that may fail, returning its output and error.
func bamErr(url string, args ...string) (string, error) {
	out, err := exec.Command(bamBinary, append(args, "--store", url)...).CombinedOutput()
	return string(out), err
}

// count returns how many events the writer has had acknowledged.
func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}
