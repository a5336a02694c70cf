package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type answer struct {
	status int
	body   string
}

func get(t *testing.T, h http.Handler, method, target string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return answer{rec.Code, string(b)}
}

func passing(name string) Check {
	return Check{Name: name, Run: func(context.Context) error { return nil }}
}

func failing(name, why string) Check {
	return Check{Name: name, Run: func(context.Context) error { return errors.New(why) }}
}

// TestHandler: the answer's status and lines, as Kubernetes' endpoints
// write them, with and without ?verbose and ?exclude.
func TestHandler(t *testing.T) {
	ok := NewChecker(Config{}, passing("store-write"), passing("heartbeat")).Handler("readyz")
	bad := NewChecker(Config{}, passing("store-write"), failing("heartbeat", "the last heartbeat\nwas 4s ago")).Handler("readyz")
	for _, c := range []struct {
		h            http.Handler
		method, path string
		status       int
		body         string
	}{
		{ok, "GET", "/readyz", 200, "ok"},
		{ok, "HEAD", "/readyz", 200, ""},
		{ok, "GET", "/readyz?verbose", 200, "[+]store-write ok\n[+]heartbeat ok\nreadyz check passed\n"},
		{bad, "GET", "/readyz", 503, "[-]heartbeat failed: the last heartbeat was 4s ago\nreadyz check failed\n"},
		{bad, "GET", "/readyz?verbose=1", 503, "[+]store-write ok\n[-]heartbeat failed: the last heartbeat was 4s ago\nreadyz check failed\n"},
		{bad, "GET", "/readyz?exclude=heartbeat", 200, "ok"},
		{bad, "GET", "/readyz?exclude=heartbeat&verbose", 200, "[+]store-write ok\n[+]heartbeat excluded: ok\nreadyz check passed\n"},
		{bad, "GET", "/readyz?exclude=hartbeat", 400, "exclude=hartbeat: no such check; the checks are store-write, heartbeat\n"},
		{bad, "POST", "/readyz", 405, "method POST is not allowed on /readyz (allowed: GET, HEAD)\n"},
		{Live(), "GET", "/livez", 200, "ok"},
		{Live(), "GET", "/livez?verbose", 200, "[+]ping ok\nlivez check passed\n"},
		{Live(), "DELETE", "/livez", 405, "method DELETE is not allowed on /livez (allowed: GET, HEAD)\n"},
	} {
		got := get(t, c.h, c.method, c.path)
		if got.status != c.status || got.body != c.body {
			t.Errorf("%s %s: %d %q; want %d %q", c.method, c.path, got.status, got.body, c.status, c.body)
		}
	}
}

// TestCache: however many ask, the checks run once per CacheFor, and asks
// that come while an evaluation runs wait for it rather than start
// another.
func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		slow := Check{Name: "store-write", Run: func(ctx context.Context) error {
			runs.Add(1)
			time.Sleep(300 * time.Millisecond)
			return nil
		}}
		h := NewChecker(Config{CacheFor: time.Second}, slow).Handler("readyz")
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a := get(t, h, "GET", "/readyz"); a.status != 200 {
					t.Errorf("%d %s", a.status, a.body)
				}
			}()
		}
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("50 asks at once ran the checks %d times; want 1", n)
		}
		time.Sleep(500 * time.Millisecond)
		get(t, h, "GET", "/readyz")
		if n := runs.Load(); n != 1 {
			t.Fatalf("an ask within CacheFor ran the checks again (%d runs)", n)
		}
		time.Sleep(600 * time.Millisecond)
		get(t, h, "GET", "/readyz")
		if n := runs.Load(); n != 2 {
			t.Fatalf("an ask after CacheFor: %d runs; want 2", n)
		}
	})
}

// TestTimeout: an evaluation ends by Config.Timeout, whatever the check
// does and whatever the asker's deadline; an asker that goes away does not
// cut it short for the others.
func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := Check{Name: "store-write", Run: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		c := NewChecker(Config{Timeout: 700 * time.Millisecond}, hang)
		impatient, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		done := make(chan []Result)
		go func() {
			r, err := c.Results(context.Background())
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		time.Sleep(10 * time.Millisecond)
		if _, err := c.Results(impatient); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("an asker whose deadline passed while it waited: %v", err)
		}
		r := <-done
		if took := time.Since(start); took != 700*time.Millisecond {
			t.Errorf("the evaluation took %v; want the timeout, 700ms", took)
		}
		if len(r) != 1 || !errors.Is(r[0].Err, context.DeadlineExceeded) {
			t.Errorf("results %+v", r)
		}
	})
}
