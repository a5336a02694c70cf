package sqlite

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// The test binary re-runs itself as a child process for the tests that need
// a real second process: BAM_SQLITE_CHILD names the part to play.
const (
	childEnv = "BAM_SQLITE_CHILD"
	pathEnv  = "BAM_SQLITE_PATH"
	argEnv   = "BAM_SQLITE_ARG"
)

// TestMain also checks every merge of the batch fold against the upsert
// (verifyMerges), in every test of the package.
func TestMain(m *testing.M) {
	verifyMerges = true
	if role := os.Getenv(childEnv); role != "" {
		if err := runChild(role, os.Getenv(pathEnv), os.Getenv(argEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(role, path, arg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := strconv.Atoi(arg)
	if err != nil {
		return fmt.Errorf("child arg %q: %w", arg, err)
	}
	switch role {
	case "hold":
		// Hold liveness key n until killed.
		if _, err := s.HoldLiveness(ctx, int64(n)); err != nil {
			return err
		}
		fmt.Println("held")
		<-ctx.Done()
		return nil
	case "worker":
		return playNode(ctx, s, fmt.Sprintf("child-%d", n), n)
	}
	return fmt.Errorf("unknown child role %q", role)
}

// Batches and events per worker in the contention tests.
const (
	workerBatches  = 40
	eventsPerBatch = 5
)

// playNode plays one node owning partition p: it appends to its partition,
// applies batches fenced on its lease and renews on its own goroutine the
// whole time, as a node does under load.
func playNode(ctx context.Context, s *Store, node string, p int) error {
	n := store.NodeRow{ID: node, State: store.NodeRunning}
	if err := s.Join(ctx, n); err != nil {
		return err
	}
	// A claim gives up after 500 ms on the file's write lock (ErrLocked),
	// which the other nodes' renewals, in a loop here, may hold that long
	// on a loaded machine: a node tries again at its next round, and so
	// does this one.
	var l store.Lease
	for start := time.Now(); ; {
		var err error
		l, err = s.Claim(ctx, store.SessionID{Source: "src", Partition: p}, node, "", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLocked) || ctx.Err() != nil || time.Since(start) > 30*time.Second {
			return err
		}
	}
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	renewErr := make(chan error, 1)
	go func() {
		for renewCtx.Err() == nil {
			leases, err := s.Renew(renewCtx, n, time.Minute)
			if err != nil && renewCtx.Err() == nil {
				renewErr <- err
				return
			}
			if err == nil && len(leases) != 1 {
				renewErr <- fmt.Errorf("renew returned %d leases, want 1", len(leases))
				return
			}
		}
		renewErr <- nil
	}()
	var from store.Position
	for b := range workerBatches {
		evs := make([]store.BufferEvent, eventsPerBatch)
		var events []event.Event
		for i := range evs {
			evs[i] = store.BufferEvent{Partition: p, Payload: []byte(`{}`)}
			events = append(events, event.Event{
				Activity: "A", Instance: fmt.Sprintf("%s-%d", node, i), Kind: event.Update,
				Time: time.Now(), Data: map[string]json.RawMessage{"Batch": json.RawMessage(strconv.Itoa(b))},
			})
		}
		if err := s.AppendBuffer(ctx, "src", evs); err != nil {
			return err
		}
		cp := store.Position{Minor: from.Minor + eventsPerBatch}
		batch := store.Batch{Lease: l, Node: node, From: from, Checkpoint: cp, Deltas: event.Coalesce(events), Applied: len(events)}
		if err := s.Apply(ctx, batch); err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		from = cp
	}
	stopRenew()
	return <-renewErr
}

// checkWorkers checks what playNode left behind; nodes[p] owned partition p.
func checkWorkers(t *testing.T, ctx context.Context, s *Store, nodes []string) {
	t.Helper()
	sessions, err := s.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, node := range nodes {
		se := sessions[p]
		if se.Owner != node || se.Applied != workerBatches*eventsPerBatch ||
			se.Checkpoint != (store.Position{Minor: workerBatches * eventsPerBatch}) {
			t.Errorf("session %d = %+v; want owner %s, %d applied", p, se, node, workerBatches*eventsPerBatch)
		}
		for i := range eventsPerBatch {
			in, err := s.Instance(ctx, event.Key{Activity: "A", Instance: fmt.Sprintf("%s-%d", node, i)})
			if err != nil || in.Events != workerBatches {
				t.Errorf("instance %s-%d: %d events, %v; want %d", node, i, in.Events, err, workerBatches)
			}
		}
	}
	// Apply deletes buffer records as it goes (and playNode's checkpoints
	// are counts, not record ids), so count the ids handed out.
	seqs, err := s.sequences(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(nodes) * workerBatches * eventsPerBatch); seqs.buffer != want {
		t.Errorf("%d events appended, want %d", seqs.buffer, want)
	}
}

// Two Stores on one file meet each other only through SQLite's locks, as
// two processes do. Each applies, appends and renews at the same time;
// none may see SQLITE_BUSY, and every batch must land once.
func TestTwoStoresOnOneFile(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t, 4)
	stores := []*Store{s, s, openAt(t, ctx, s.Path()), openAt(t, ctx, s.Path())}
	nodes := []string{"a0", "a1", "b0", "b1"}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for p, node := range nodes {
		wg.Go(func() {
			if err := playNode(ctx, stores[p], node, p); err != nil {
				errs <- fmt.Errorf("%s: %w", node, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkWorkers(t, ctx, s, nodes)

	// A takeover through the other Store fences the first owner at once.
	b := stores[2]
	if n, err := b.ExpireLeases(ctx, "a0"); err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v", n, err)
	}
	if _, err := b.Claim(ctx, store.SessionID{Source: "src", Partition: 0}, "b0", "a0", time.Minute); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	sessions, _ := s.Sessions(ctx)
	stale := store.Batch{
		Lease: store.Lease{SessionID: store.SessionID{Source: "src", Partition: 0}, Epoch: sessions[0].Epoch - 1},
		Node:  "a0", From: sessions[0].Checkpoint, Checkpoint: store.Position{Minor: 9999},
	}
	if err := s.Apply(ctx, stale); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Apply by the old owner after a takeover = %v, want ErrFenced", err)
	}
}

// The same, with real processes: two children and this process write the
// file at once.
func TestSeveralProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	s, ctx := setup(t, 3)
	nodes := []string{"child-0", "child-1", "parent"}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for p := range 2 {
		cmd := child(t, "worker", s.Path(), p)
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("child %d: %v: %s", p, err, out)
			}
		})
	}
	wg.Go(func() {
		if err := playNode(ctx, s, "parent", 2); err != nil {
			errs <- fmt.Errorf("parent: %w", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkWorkers(t, ctx, s, nodes)
}

func child(t *testing.T, role, path string, arg int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, pathEnv+"="+path, argEnv+"="+strconv.Itoa(arg))
	return cmd
}

// The liveness lock goes the moment its holder is killed, with no chance to
// clean up: that is what lets a peer expire a crashed node's leases at once.
func TestLivenessReleasedWhenHolderIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	s, ctx := setup(t, 0)
	cmd := child(t, "hold", s.Path(), 77)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	held, err := s.LivenessHeld(ctx, []int64{77})
	if err != nil || !held[77] {
		t.Fatalf("LivenessHeld while the child lives = %v, %v", held, err)
	}
	if _, err := s.HoldLiveness(ctx, 77); err == nil {
		t.Fatal("HoldLiveness of a key another process holds succeeded")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	held, err = s.LivenessHeld(ctx, []int64{77})
	if err != nil || held[77] {
		t.Fatalf("LivenessHeld after SIGKILL = %v, %v; want not held", held, err)
	}
	if _, err := os.Stat(s.lockPath(77)); !os.IsNotExist(err) {
		t.Errorf("the dead holder's lock file is still there (%v)", err)
	}
}
