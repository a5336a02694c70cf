package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/faultproxy"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestServeHTTP runs `bam serve --http 127.0.0.1:0`, reads the address it
// logs, posts events and reads them back as instances once the node has
// applied them.
func TestServeHTTP(t *testing.T) {
	t.Run("refuses an address beyond this machine", func(t *testing.T) {
		b := migrated(t)
		b.fails(exitUsage, "", []string{"serve", "--http", "0.0.0.0:8480"}, "--http 0.0.0.0:8480", "loopback", "--http-allow-remote")
		b.fails(exitUsage, "", []string{"serve", "--http", ":8480"}, "loopback")
		b.fails(exitUsage, "", []string{"serve", "--http", "8480"}, "HOST:PORT")
		b.fails(exitUsage, "", []string{"serve", "--http-allow-remote"}, "--http-allow-remote needs --http")
		b.fails(exitUsage, "", []string{"serve", "--http", "127.0.0.1:0", "--http-max-body", "0"}, "--http-max-body")
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		b.fails(exitError, "", []string{"serve", "--http", taken.Addr().String()}, "not starting the node", "address already in use")
	})

	t.Run("takes events and shows instances", func(t *testing.T) {
		b := migrated(t)
		b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
		node := serveHTTP(t, b)
		base, log, stop := node.base, node.log, node.stop

		body := `{"activity":"PurchaseOrder","instance":"PO-1042","kind":"begin","data":{"Customer":"Contoso"}}
{"activity":"PurchaseOrder","instance":"PO-1042","kind":"update","data":{"Amount":1200}}
{"activity":"PurchaseOrder","instance":"PO-1042","kind":"finish"}
`
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/sources/orders/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Idempotency-Key", "e2e-1")
		res := httpDo(t, req)
		if res.status != http.StatusOK || !strings.Contains(res.body, `"accepted":2`) || !strings.Contains(res.body, `"line":3,"field":"kind"`) {
			t.Fatalf("post: %d %s", res.status, res.body)
		}

		var in map[string]any
		testwait.Until(t, 15*time.Second, "the events to be applied", func() bool {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/activities/PurchaseOrder/instances/PO-1042", nil)
			res := httpDo(t, req)
			if res.status != http.StatusOK {
				return false
			}
			if err := json.Unmarshal([]byte(res.body), &in); err != nil {
				t.Fatalf("instance: %v: %s", err, res.body)
			}
			return in["events"] == float64(2)
		})
		data, _ := in["data"].(map[string]any)
		if in["state"] != "active" || data["Amount"] != float64(1200) || data["Customer"] != "Contoso" {
			t.Errorf("instance = %v", in)
		}
		req, _ = http.NewRequest(http.MethodGet, base+"/v1/activities/PurchaseOrder/instances?state=active", nil)
		if res := httpDo(t, req); res.status != http.StatusOK || !strings.Contains(res.body, `"instance":"PO-1042"`) {
			t.Errorf("list: %d %s", res.status, res.body)
		}
		// The CLI sees the same instance.
		if r := b.ok("instance", "get", "PurchaseOrder", "PO-1042", "--json"); !strings.Contains(r.stdout, `"Amount": 1200`) {
			t.Errorf("bam instance get: %s", r.stdout)
		}

		if code := stop(); code != 0 {
			t.Fatalf("serve exit %d", code)
		}
		stopped := false
		for _, l := range logLines(t, log.String()) {
			stopped = stopped || l["msg"] == "http api stopped"
		}
		if !stopped {
			t.Error(`no "http api stopped" in the log`)
		}
	})
}

// servedNode is `bam serve --http 127.0.0.1:0` run in-process on a
// bench's store.
type servedNode struct {
	base string // the HTTP API's URL
	log  *syncBuffer
	stop func() int // ends the node and returns its exit code
}

// serveHTTP starts a node with the HTTP API, with args added to its flags,
// and returns once the API listens. The node is stopped when the test
// ends, and its log shown if the test failed.
func serveHTTP(t *testing.T, b *bench, args ...string) *servedNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		args := append([]string{"--store", b.url, "serve", "--name", "inproc", "--log-format", "json", "--poll-interval", "50ms", "--http", "127.0.0.1:0"}, args...)
		done <- run(ctx, args, strings.NewReader(""), &syncBuffer{}, log, nil)
	}()
	code, stopped := 0, false
	n := &servedNode{log: log}
	n.stop = func() int {
		cancel()
		if stopped {
			return code
		}
		select {
		case code = <-done:
			stopped = true
			return code
		case <-time.After(20 * time.Second):
			t.Fatalf("serve did not stop within 20s; log:\n%s", log.String())
			return -1
		}
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	})
	testwait.Until(t, 15*time.Second, "the http api to listen", func() bool {
		for _, l := range logLines(t, log.String()) {
			if l["msg"] == "http api listening" {
				n.base, _ = l["url"].(string)
			}
		}
		return n.base != ""
	})
	return n
}

type httpResult struct {
	status int
	body   string
}

func httpDo(t *testing.T, req *http.Request) httpResult {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{res.StatusCode, string(b)}
}

func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestServeWaitsForTheStore: a node started while its store is down waits
// for it, saying so, and joins once it answers; before, it exited at once,
// so a pool restarted with its store did not come up by itself.
func TestServeWaitsForTheStore(t *testing.T) {
	b := newBench(t)
	b.url = testpg.NewDatabase(t)
	b.ok("migrate")
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")

	// A port nothing listens on yet: the store is "down".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().String()
	ln.Close()
	u, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	u.Host = port

	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--store", u.String(), "serve", "--name", "waiting", "--log-format", "text"},
			strings.NewReader(""), io.Discard, &stderr, nil)
	}()
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), what) {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d before logging %q:\n%s", code, what, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not log %q within 20s:\n%s", what, stderr.String())
			}
			time.Sleep(20 * time.Millisecond) // polls a running serve; on failure the loop shows its log
		}
	}
	waitLog("store unreachable; waiting for it")
	// The store comes back on that port.
	p, err := faultproxy.Listen(port, target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitLog("node joined the pool")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d after SIGTERM:\n%s", code, stderr.String())
	}
}

// TestConnectionErrorSaysItOnce: an unreachable store is named once, its
// password masked, and the cause said once, on one clean line. (Before:
// the URL twice, the dial error twice, and a stray ":;".)
func TestConnectionErrorSaysItOnce(t *testing.T) {
	b := newBench(t)
	b.url = "postgres://postgres:s3cret-pw@127.0.0.1:1/x"
	r := b.fails(exitError, "", []string{"status"}, "127.0.0.1:1", "connection refused")
	line := strings.TrimSpace(strings.SplitN(r.stderr, "\n", 2)[0])
	for what, n := range map[string]int{"postgres://postgres:xxxxx@127.0.0.1:1/x": 1, "connection refused": 1, "s3cret-pw": 0, ":;": 0} {
		if got := strings.Count(line, what); got != n {
			t.Errorf("%q appears %d times, want %d: %s", what, got, n, line)
		}
	}
}
