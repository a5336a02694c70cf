package browser

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bam-dev/bam/internal/httpapi"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// viewer serves the HTTP API and the portal over the pool's store from
// this process, which is no member of the pool: the page stays up while
// the test kills the nodes.
func (p pool) viewer(t *testing.T) string {
	t.Helper()
	st, err := storeurl.Open(context.Background(), p.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := httpapi.New(st, httpapi.Config{LeaseTTL: 2 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPoolPageShowsTheSeedScenario plays the founding figure with real
// processes while the pool page stays open: (A) node-1 owns both sources'
// sessions; (B) node-2 joins and node-1 hands one over; (C) node-1 is
// killed; (D) node-2 owns both. The page follows each step by itself.
func TestPoolPageShowsTheSeedScenario(t *testing.T) {
	ctx := browser(t)
	// The founding scenario has two sessions: the example's alerts, whose
	// session would be a third, are left out.
	defs := purchaseOrderDefinitions(t)
	start := strings.Index(defs, "    alerts:")
	end := start + strings.Index(defs[start:], "\n  - name: ") + 1
	p := newPool(t, defs[:start]+defs[end:])
	p.bam(t, "source", "add", "src1", "--kind", "buffer", "--partitions", "1")
	p.bam(t, "source", "add", "src2", "--kind", "buffer", "--partitions", "1")
	view := p.viewer(t)

	owners := func(want1, want2 string) chromedp.Action[chromedp.Void] {
		return until(`(() => { const o = s => { const e = document.querySelector('#pool g.session[data-session="' + s + '"]'); return e && e.dataset.owner; };
			return o('src1/0') === '` + want1 + `' && o('src2/0') === '` + want2 + `'; })()`)
	}
	n1, _ := p.startNode(t, "node-1", false)
	do(t, ctx, chromedp.Navigate(view+"/pool"), owners("node-1", "node-1"))
	screenshot(t, ctx, "pool-a")

	p.startNode(t, "node-2", false)
	do(t, ctx, until(`(() => { const o = [...document.querySelectorAll('#pool g.session')].map(e => e.dataset.owner).sort().join(',');
		return o === 'node-1,node-2'; })()`))
	if links := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#pool path.link').length`)); links != 2 {
		t.Errorf("B: %d links drawn, want 2", links)
	}
	// Events written now show as the pool's rate.
	p.http = view
	var evs []map[string]any
	for i := range 200 {
		evs = append(evs, map[string]any{"activity": "PurchaseOrder", "instance": "PO-" + strconv.Itoa(i), "kind": "begin"})
	}
	p.postTo(t, "src1", evs...)
	do(t, ctx, until(`/Applying [1-9]/.test(document.querySelector('#pool-rate').textContent)`))
	screenshot(t, ctx, "pool-b")

	n1.Kill()
	do(t, ctx, owners("node-2", "node-2"),
		until(`!document.querySelector('#pool g.node[data-node="node-1"]')`),
		until(`!!document.querySelector('#gone-list li[data-node="node-1"]')`))
	screenshot(t, ctx, "pool-d")
}

// TestPagesThroughAStall: the pool page and the activities page (in a
// second tab) are served by the node that the test stops (SIGSTOP) for
// ten seconds. While it hangs, each page says since when it has had no
// answer (a read that hangs is given up); once it runs again (SIGCONT),
// the pool page shows it running within a few seconds, and asks every
// second again, not four times as long as the hung read took, and the
// activities page follows again.
func TestPagesThroughAStall(t *testing.T) {
	ctx := browser(t)
	p := newPool(t, purchaseOrderDefinitions(t))
	p.bam(t, "source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	n1, url := p.startNode(t, "node-1", true)
	const running = `!!document.querySelector('#pool g.node.state-running[data-node="node-1"]')`
	do(t, ctx, chromedp.Navigate(url+"/pool"), until(running), until(`/every second/.test(document.querySelector('#pool-status').textContent)`))
	tab, closeTab := chromedp.NewContext(ctx)
	defer closeTab()
	do(t, tab, chromedp.Navigate(url+"/"), until(`/^\d/.test(document.querySelector('#activities td.rate')?.textContent || '')`))

	if err := n1.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	do(t, ctx, until(`/^No answer since \d\d:\d\d:\d\dZ/.test(document.querySelector('#pool-no-answer')?.textContent || '')`))
	if waited := time.Since(stopped); waited > 7*time.Second {
		t.Errorf("the page said the node does not answer %s after it stopped", waited.Round(time.Second))
	}
	do(t, tab, until(`/^No answer since \d\d:\d\d:\d\dZ/.test(document.querySelector('#activities-status').textContent)`))
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	if err := n1.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	do(t, ctx, until(`!document.querySelector('#pool-no-answer') && /every second/.test(document.querySelector('#pool-status').textContent) && `+running))
	if waited := time.Since(resumed); waited > 8*time.Second {
		t.Errorf("the page showed the node running %s after it resumed", waited.Round(time.Second))
	}
	do(t, tab, until(`document.querySelector('#activities-status').textContent === ''`))
	if waited := time.Since(resumed); waited > 13*time.Second {
		t.Errorf("the activities page followed again %s after the node resumed", waited.Round(time.Second))
	}
}

// TestPoolPageTellsNodesApart: two nodes of one name (both "vm", as two
// nodes on one host are named by default) show as "vm (id)" in the
// figure and in the sessions' Owner column, each box titled with its id;
// the pool paused, the banner says since when and by whom; a node that
// stops answering shows as silent with its heartbeat's age.
func TestPoolPageTellsNodesApart(t *testing.T) {
	ctx := browser(t)
	p := newPool(t, purchaseOrderDefinitions(t))
	p.bam(t, "source", "add", "orders", "--kind", "buffer", "--partitions", "2")
	view := p.viewer(t)
	p.startNode(t, "vm", false)
	n2, _ := p.startNode(t, "vm", false)
	do(t, ctx, chromedp.Navigate(view+"/pool"),
		until(`document.querySelectorAll('#pool g.node[data-node="vm"]').length === 2 &&
			[...document.querySelectorAll('#pool g.session')].every(s => s.dataset.owner === 'vm')`))
	boxes := get(t, ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#pool g.node')].map(g =>
		[g.dataset.id, g.querySelector('.box-title').textContent, g.querySelector('title').textContent])`))
	if len(boxes) != 2 || boxes[0][0] == boxes[1][0] {
		t.Fatalf("nodes drawn: %q", boxes)
	}
	labels := map[string]bool{}
	for _, b := range boxes {
		if want := "vm (" + b[0] + ")"; b[1] != want || !strings.HasPrefix(b[2], want) {
			t.Errorf("node %s drawn as %q, titled %q; want %q", b[0], b[1], b[2], want)
		}
		labels[b[1]] = true
	}
	owners := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#session-table tbody tr[data-session^="orders/"] td:first-of-type')].map(td => td.textContent)`))
	for _, o := range owners {
		if !labels[o] {
			t.Errorf("a session's owner shows as %q, not as one of %v", o, labels)
		}
	}

	// Paused: the banner says since when and by whom.
	p.bam(t, "pause", "--wait", "20s")
	do(t, ctx, until(`/^The pool is paused \(bam pause since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ by \S+@\S+\)/.test(document.querySelector('#pool-paused')?.textContent || '')`))
	p.bam(t, "resume")
	do(t, ctx, until(`!document.querySelector('#pool-paused')`))

	if err := n2.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer n2.Signal(syscall.SIGCONT)
	do(t, ctx, until(`/^silent, heartbeat \d+s ago · /.test(document.querySelector('#pool g.node.state-silent .node-detail')?.textContent || '')`))
}
