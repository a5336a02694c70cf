package pgoutbox

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// blackhole forwards TCP connections to a server until it is frozen; then
// it stops forwarding in both directions without closing anything, the way
// a dead peer behind a silent network looks to the client.
type blackhole struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	freeze sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target, frozen: make(chan struct{})}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		// pgx opens connections of its own after the freeze (to send a
		// cancel request when it gives a connection up): one accepted while
		// close runs must be closed here, or its pipes would wait for the
		// server's authentication timeout.
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		b.conns = append(b.conns, c, s)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(c, s)
		go b.pipe(s, c)
	}
}

// pipe copies src to dst, chunk by chunk, holding every chunk read after
// the freeze.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-b.frozen:
				continue
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	b.closed = true
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestWatchSilentNetwork: a connection that goes silent (no reset, no
// error) is found by Watch's ping, so the bus reconnects instead of
// waiting forever for notifications that cannot come.
func TestWatchSilentNetwork(t *testing.T) {
	b := setup(t, "", 1)
	u, err := url.Parse(b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	hole := newBlackhole(t, u.Host)
	u.Host = hole.ln.Addr().String()
	r, err := Open(context.Background(), u.String(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.pingEvery, r.pingTimeout = 50*time.Millisecond, 200*time.Millisecond

	woke := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(context.Background(), func() {
			select {
			case woke <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-woke:
	case err := <-done:
		t.Fatalf("watch ended before listening: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("watch never listened")
	}
	hole.freeze.Do(func() { close(hole.frozen) })
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("watch on a silent connection: %v, want the ping's failure", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch still waits on a silent connection")
	}
}
