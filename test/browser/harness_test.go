// Package browser tests the portal (internal/portal) in a real headless
// Chromium, driven by chromedp, against real `bam serve` processes on a
// SQLite store. Chromium is Debian's (/usr/bin/chromium, or
// BAM_CHROMIUM): .ci/run installs it when missing; elsewhere, without it,
// the tests skip and say so. With BAM_PORTAL_SCREENSHOTS=DIR they write
// their screenshots there (docs/PORTAL.md's are taken so).
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bam-dev/bam/internal/testproc"
)

var bamBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bam-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bamBinary, err = testproc.Build(dir, "github.com/bam-dev/bam/cmd/bam"); err != nil {
		fmt.Fprintln(os.Stderr, "build bam:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// chromium returns the browser's path, or skips the test (fails it under
// CI, where .ci/run installs the browser).
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("BAM_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Chromium at %s (.ci/run installs Debian's chromium): %v", path, err)
		}
		t.Skipf("no Chromium at %s: the portal's browser tests need it (apt-get install chromium, or set BAM_CHROMIUM)", path)
	}
	return path
}

// browser starts a headless Chromium for the test and returns a context
// of its first tab. Chromium is started as Debian's is in containers: no
// sandbox (tests may run as root), and none of the background
// connections this machine's closed network refuses.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The browser lives as long as the context of its first action: no
	// timeout on that one; the test's actions get one.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return tctx
}

// css is a CSS selector for chromedp.
type css = chromedp.CSS

// do runs steps in the tab, failing the test at the first error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs an action that returns a value, failing the test on error.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pool is a store with `bam serve` nodes serving the HTTP API.
type pool struct {
	store string // the store's URL
	http  string // the first node's base URL, http://127.0.0.1:port
}

// bam runs the bam command line on the pool's store and returns its
// standard output.
func (p pool) bam(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bamBinary, append(args, "--store", p.store)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("bam %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// newPool creates a SQLite store with the definitions deployed; no source
// and no node yet.
func newPool(t *testing.T, definitions string) pool {
	t.Helper()
	dir := t.TempDir()
	p := pool{store: "sqlite:" + filepath.Join(dir, "bam.db")}
	defs := filepath.Join(dir, "definitions.yaml")
	if err := os.WriteFile(defs, []byte(definitions), 0o644); err != nil {
		t.Fatal(err)
	}
	p.bam(t, "migrate")
	p.bam(t, "deploy", defs)
	return p
}

// startNode starts a `bam serve` node of the pool, killed when the test
// ends; with http, it serves the API on a free port of 127.0.0.1 and
// returns its base URL too.
func (p pool) startNode(t *testing.T, name string, http bool) (*testproc.Proc, string) {
	t.Helper()
	args := []string{"serve", "--store", p.store, "--name", name, "--log-format", "json", "--poll-interval", "100ms",
		"--lease-ttl", "2s", "--renew-interval", "500ms", "--safety-margin", "300ms", "--balance-interval", "250ms", "--alert-interval", "250ms"}
	if http {
		args = append(args, "--http", "127.0.0.1:0")
	}
	n := testproc.StartTest(t, testproc.Config{Path: bamBinary, Name: name, Args: args})
	if !http {
		if _, _, err := n.WaitJoined(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		return n, ""
	}
	l, err := n.WaitLine(20*time.Second, "its http api to listen", func(l map[string]any) bool {
		url, _ := l["url"].(string)
		return l["msg"] == "http api listening" && url != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, strings.TrimSuffix(l["url"].(string), "/")
}

// startPool creates a SQLite store with the definitions and a buffer
// source "orders", and starts one node with its HTTP API.
func startPool(t *testing.T, definitions string) pool {
	t.Helper()
	p := newPool(t, definitions)
	p.bam(t, "source", "add", "orders", "--kind", "buffer", "--partitions", "2")
	_, p.http = p.startNode(t, "node-1", true)
	return p
}

// post sends events (each a JSON object) to the source "orders".
func (p pool) post(t *testing.T, events ...map[string]any) {
	t.Helper()
	p.postTo(t, "orders", events...)
}

// postTo sends events to a source.
func (p pool) postTo(t *testing.T, source string, events ...map[string]any) {
	t.Helper()
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(p.http+"/v1/sources/"+source+"/events", "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Accepted int `json:"accepted"`
		Rejected []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || answer.Accepted != len(events) {
		t.Fatalf("post %d events: %d %+v %v", len(events), resp.StatusCode, answer, err)
	}
}

// waitApplied waits until the store has applied every event posted.
func (p pool) waitApplied(t *testing.T, events int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Sessions []struct {
				Applied int `json:"applied"`
				Backlog struct {
					Events int `json:"events"`
				} `json:"backlog"`
			} `json:"sessions"`
		}
		resp, err := http.Get(p.http + "/v1/sessions?source=orders")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		applied, backlog := 0, 0
		for _, s := range st.Sessions {
			applied += s.Applied
			backlog += s.Backlog.Events
		}
		if err == nil && applied >= events && backlog == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events applied after 30s (backlog %d): %v", applied, events, backlog, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the page as name.png in BAM_PORTAL_SCREENSHOTS, when
// set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("BAM_PORTAL_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, chromedp.CaptureScreenshot()) // the window, 1280 × 900
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// searched waits until the search page shows the results of its URL:
// after a click that moves to another URL, the page's previous results
// stay on screen until the new ones come.
func searched() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`(() => { const r = document.querySelector('#results');
			return !!r && r.dataset.state !== 'loading' && r.dataset.query === location.search; })()`,
			chromedp.WithPollingTimeout(20*time.Second))(ctx, t)
		return err
	})
}

// until waits until the JavaScript expression js is true.
func until(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))(ctx, t)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", js, err)
		}
		return nil
	})
}

// choose picks value in the select sel, as a user would: the value, then
// the change event the page listens to.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		js := fmt.Sprintf(`(() => { const s = document.querySelector(%q); if (!s || ![...s.options].some(o => o.value === %q)) return false;
			s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, value, value)
		ok, err := chromedp.Evaluate[bool](js)(ctx, t)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no option %q in %s", value, sel)
		}
		return nil
	})
}

// setValue sets the value of the input or textarea sel, as a script
// would (chromedp.SetValue does not take a textarea).
func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ok, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q; return true; })()`, sel, value))(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("no %s", sel)
		}
		return err
	})
}
