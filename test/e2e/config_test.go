package e2e

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/testproc"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestPoolSettingLive: a running `bam serve` applies `bam config set
// max-event-size` without a restart, told by the store's notice. An event that was accepted before is
// then refused by its HTTP API, and quarantined by its session when
// written past the API; the change is logged once, with the old and new
// value. A value that breaks a rule is refused, and the node keeps going.
func TestPoolSettingLive(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "orders", "--kind", "buffer", "--partitions", "1")
		// A balance interval of 5 s puts the node's fallback reread of the
		// settings 50 s away: the change must reach it by its notice.
		n := startNode(t, url, "node-1", "--http", "127.0.0.1:0", "--balance-interval", "5s")
		base := n.httpURL(t)
		n.id(t)
		client := &http.Client{Timeout: 10 * time.Second}
		big := func(id string) string {
			return `{"activity":"PurchaseOrder","instance":"` + id + `","kind":"begin","data":{"Note":"` + strings.Repeat("x", 400) + `"}}` + "\n"
		}
		status, _, resp, err := post(client, base+"/v1/sources/orders/events", "k1", big("PO-1"))
		if err != nil || status != http.StatusOK || !strings.Contains(resp, `"accepted":1`) {
			t.Fatalf("a 450-byte event under the default limit: %d %s %v", status, resp, err)
		}

		out := bam(t, url, "config", "set", "max-event-size", "300")
		if !strings.Contains(out, "running nodes apply it within seconds") {
			t.Fatalf("config set: %s", out)
		}
		if _, err := n.WaitLine(15*time.Second, "the node to apply max-event-size 300", func(l map[string]any) bool {
			return l["msg"] == "pool setting applied" && l["setting"] == "max-event-size" && l["new"] == "300" && l["old"] == "262144"
		}); err != nil {
			t.Fatal(err)
		}
		status, _, resp, err = post(client, base+"/v1/sources/orders/events", "k2", big("PO-2"))
		if err != nil || status != http.StatusUnprocessableEntity || !strings.Contains(resp, `"accepted":0`) || !strings.Contains(resp, "over the limit of 300") {
			t.Fatalf("the same event over the new limit: %d %s %v", status, resp, err)
		}
		// bam emit checks with the pool's limit too; past it (its own
		// flag wins), straight into the buffer: the session quarantines it.
		emit := []string{"emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-3", "--kind", "begin", "--data", "Note=" + strings.Repeat("y", 400)}
		if out, err := exec.Command(bamBinary, append(emit, "--store", url)...).CombinedOutput(); err == nil || !strings.Contains(string(out), "over the limit of 300") {
			t.Fatalf("bam emit over the pool's limit: %v\n%s", err, out)
		}
		bam(t, url, append(emit, "--max-event-size", "100000")...)
		testwait.Until(t, 20*time.Second, "the session to quarantine the event over the new limit", func() bool {
			return strings.Contains(bam(t, url, "failed", "list"), "over the limit of 300")
		})
		if got := n.logged(t, "pool setting applied"); got != 1 {
			t.Errorf("%d 'pool setting applied' lines, want 1", got)
		}

		// require-definitions reaches the API's check of definitions too.
		small := `{"activity":"Undeployed","instance":"U-1","kind":"begin"}` + "\n"
		if status, _, resp, err := post(client, base+"/v1/sources/orders/events", "k3", small); err != nil || status != http.StatusOK {
			t.Fatalf("an undeployed activity, by default: %d %s %v", status, resp, err)
		}
		bam(t, url, "config", "set", "require-definitions", "true")
		if _, err := n.WaitLine(15*time.Second, "the node to apply require-definitions", func(l map[string]any) bool {
			return l["msg"] == "pool setting applied" && l["setting"] == "require-definitions" && l["new"] == "true"
		}); err != nil {
			t.Fatal(err)
		}
		status, _, resp, err = post(client, base+"/v1/sources/orders/events", "k4", strings.Replace(small, "U-1", "U-2", 1))
		if err != nil || status != http.StatusUnprocessableEntity || !strings.Contains(resp, "is not deployed") {
			t.Fatalf("an undeployed activity, with require-definitions: %d %s %v", status, resp, err)
		}

		cmd := exec.Command(bamBinary, "config", "set", "safety-margin", "2s", "--store", url)
		refusal, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(refusal), "safety-margin 2s must be less than lease TTL − renew interval (2s)") {
			t.Fatalf("an invalid setting: %v\n%s", err, refusal)
		}
		if n.Exited() {
			t.Fatalf("the node exited:\n%s", n.Tail())
		}
	})
}

// TestPoolSettingsAtStart: a node starts with the pool's settings, and one
// whose own flag overrides a pool setting says so once, with both values.
func TestPoolSettingsAtStart(t *testing.T) {
	url := "sqlite:" + t.TempDir() + "/bam.db"
	bam(t, url, "migrate")
	bam(t, url, "config", "set", "lease-ttl", "4s")
	bam(t, url, "config", "set", "alert-interval", "30s")
	n := startNode(t, url, "node-1") // fastFlags give --lease-ttl 2s
	l, err := n.WaitLine(20*time.Second, "the node to join", func(l map[string]any) bool { return l["msg"] == "node joined the pool" })
	if err != nil {
		t.Fatal(err)
	}
	if l["lease_ttl"] != 2.0 { // JSON logs give durations in seconds
		t.Errorf("joined with lease_ttl %v, want the flag's 2s", l["lease_ttl"])
	}
	overrides := 0
	for _, l := range n.lines(t) {
		if l["msg"] == "this node's own setting overrides the pool's" {
			overrides++
			if l["setting"] != "lease-ttl" || l["value"] != "2s" || l["from"] != "flag" || l["pool_value"] != "4s" {
				t.Errorf("override logged as %v", l)
			}
		}
	}
	if overrides != 1 {
		t.Errorf("%d override lines, want 1 (lease-ttl)", overrides)
	}

	// A node without its own --lease-ttl takes the pool's.
	n2 := node{testproc.StartTest(t, testproc.Config{Path: bamBinary, Name: "node-2", Args: []string{"serve", "--store", url, "--name", "node-2", "--log-format", "json"}})}
	l, err = n2.WaitLine(20*time.Second, "node 2 to join", func(l map[string]any) bool { return l["msg"] == "node joined the pool" })
	if err != nil {
		t.Fatal(err)
	}
	if l["lease_ttl"] != 4.0 || n2.logged(t, "this node's own setting overrides the pool's") != 0 {
		t.Errorf("node 2 joined with lease_ttl %v, want the pool's 4s, and no override", l["lease_ttl"])
	}
}
