package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestHTTPIngestExactlyOnce posts batches of events with Idempotency-Keys
// to the HTTP API of two real nodes, kills the first with SIGKILL while it
// takes them, and retries every batch that got no answer against the
// second with the same key: every event acknowledged is applied exactly
// once.
func TestHTTPIngestExactlyOnce(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "orders", "--kind", "buffer", "--partitions", "4")
		st := openStore(t, url)
		n1 := startNode(t, url, "node-1", "--http", "127.0.0.1:0")
		n2 := startNode(t, url, "node-2", "--http", "127.0.0.1:0")
		targets := []string{n1.httpURL(t), n2.httpURL(t)}

		const batches, perBatch, instances = 60, 20, 50
		var answered atomic.Int32
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			for answered.Load() < batches/4 {
				time.Sleep(time.Millisecond) // polls the batches answered, to kill node 1 mid-stream
			}
			_ = n1.Signal(syscall.SIGKILL)
		}()

		client := &http.Client{Timeout: 10 * time.Second}
		written := map[string]int{}
		target, replays := 0, 0
		for b := range batches {
			body, ids := batchBody(b, perBatch, instances)
			key := fmt.Sprintf("batch-%04d", b)
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, replayed, resp, err := post(client, targets[target]+"/v1/sources/orders/events", key, body)
				if err == nil && status == http.StatusOK {
					if !strings.Contains(resp, fmt.Sprintf(`"accepted":%d`, perBatch)) {
						t.Fatalf("batch %d: %s", b, resp)
					}
					if replayed {
						replays++
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("batch %d got no 200 within 30s: %d %s %v", b, status, resp, err)
				}
				if err != nil && target == 0 {
					t.Logf("batch %d on node 1: %v; retrying on node 2 with the same key", b, err)
					target = 1
				}
				time.Sleep(20 * time.Millisecond) // a client's retry pause
			}
			for _, id := range ids {
				written[id]++
			}
			answered.Add(1)
		}
		// A client that never got node 1's answer to a batch it committed
		// retries elsewhere: the other node replays that answer.
		body0, _ := batchBody(0, perBatch, instances)
		status, replayed, resp, err := post(client, targets[1]+"/v1/sources/orders/events", "batch-0000", body0)
		if err != nil || status != http.StatusOK || !replayed {
			t.Fatalf("batch 0 (answered by node 1) sent again to node 2: %d replayed=%v %s %v; want a replay", status, replayed, resp, err)
		}
		<-killed
		if target != 1 {
			t.Fatal("node 1 never failed a request: the kill did not happen while batches were posted")
		}
		t.Logf("%d batches, %d answered by a replay", batches, replays)

		ctx := context.Background()
		testwait.Until(t, 60*time.Second, "the pool to drain the buffer", func() bool {
			for _, s := range owners(t, st) {
				n, err := st.BufferBacklog(ctx, s.SessionID, s.Checkpoint)
				if err != nil || n > 0 || s.Owner == "" {
					return false
				}
			}
			return true
		})
		for id, n := range written {
			in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: id})
			if err != nil {
				t.Errorf("instance %s: %v", id, err)
				continue
			}
			if in.Events != int64(n) {
				t.Errorf("instance %s: %d events applied, %d acknowledged", id, in.Events, n)
			}
		}
	})
}

// batchBody is batch b as NDJSON, and the instance of each of its events.
func batchBody(b, size, instances int) (string, []string) {
	var body strings.Builder
	var ids []string
	for j := range size {
		id := fmt.Sprintf("PO-%d", (b*7+j)%instances)
		ids = append(ids, id)
		fmt.Fprintf(&body, `{"activity":"PurchaseOrder","instance":%q,"kind":"update","data":{"Batch":%d}}`+"\n", id, b)
	}
	return body.String(), ids
}

// post sends one NDJSON batch with an idempotency key.
func post(c *http.Client, url, key, body string) (status int, replayed bool, resp string, err error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, false, "", err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", key)
	res, err := c.Do(req)
	if err != nil {
		return 0, false, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Idempotent-Replayed") == "true", string(b), err
}

// httpURL returns the base URL of the node's HTTP API, from its "http api
// listening" log line.
func (n node) httpURL(t *testing.T) string {
	t.Helper()
	return n.listenURL(t, "http api listening")
}

// listenURL returns the url of the node's log line msg, which a listener
// logs once it listens.
func (n node) listenURL(t *testing.T, msg string) string {
	t.Helper()
	l, err := n.WaitLine(20*time.Second, "the line "+msg, func(l map[string]any) bool {
		url, _ := l["url"].(string)
		return l["msg"] == msg && url != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return l["url"].(string)
}
