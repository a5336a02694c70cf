package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testwait"
)

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr  string
		local bool
	}{
		{"127.0.0.1:8480", true},
		{"127.1.2.3:8480", true},
		{"[::1]:8480", true},
		{"localhost:8480", true},
		{"LocalHost:0", true},
		{"0.0.0.0:8480", false},
		{":8480", false},
		{"[::]:8480", false},
		{"192.168.1.10:8480", false},
		{"bam.example.com:8480", false},
	} {
		err := CheckAddr(c.addr, false)
		if c.local && err != nil {
			t.Errorf("CheckAddr(%s) = %v, want nil", c.addr, err)
		}
		if !c.local && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckAddr(%s) = %v, want ErrNotLoopback", c.addr, err)
		}
		if err := CheckAddr(c.addr, true); err != nil {
			t.Errorf("CheckAddr(%s, allow remote) = %v, want nil", c.addr, err)
		}
	}
	for _, bad := range []string{"8480", "127.0.0.1", ""} {
		if err := CheckAddr(bad, true); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("CheckAddr(%q) = %v, want an error saying HOST:PORT", bad, err)
		}
	}
	if _, err := Listen(context.Background(), Config{Addr: "0.0.0.0:0"}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Listen(0.0.0.0:0) = %v, want ErrNotLoopback", err)
	}
	ln, err := Listen(context.Background(), Config{Addr: "0.0.0.0:0", AllowRemote: true})
	if err != nil {
		t.Fatalf("Listen(0.0.0.0:0, allow remote): %v", err)
	}
	ln.Close()
}

// TestServeStopsGracefully checks that a request in flight when the
// context ends is answered, and that new connections are refused.
func TestServeStopsGracefully(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := setupOn(t, st, "")
	entered, release := make(chan struct{}), make(chan struct{})
	cfg := Config{Addr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second, Validate: func(context.Context, event.Event) error {
		close(entered)
		<-release
		return nil
	}}
	ln, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- New(st, cfg, slog.New(slog.DiscardHandler)).Serve(ctx, ln) }()

	answered := make(chan *http.Response, 1)
	go func() {
		res, err := http.Post("http://"+addr+"/v1/sources/orders/events", "application/json", strings.NewReader(okEvent))
		if err != nil {
			t.Errorf("request in flight: %v", err)
			close(answered)
			return
		}
		answered <- res
	}()
	<-entered
	stop()
	// Serve stops accepting at once; the request in flight still runs.
	deadline := time.Now().Add(5 * time.Second)
	testwait.Until(t, time.Until(deadline), "the server to stop accepting connections after the context ended", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the request in flight was answered", err)
	default:
	}
	close(release)
	res, ok := <-answered
	if !ok {
		t.FailNow()
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("request in flight: %d %s", res.StatusCode, body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v after a clean stop", err)
	}
	if n := len(b.buffered(t, "orders", 2)); n != 1 {
		t.Fatalf("%d events buffered by the request in flight, want 1", n)
	}
}
