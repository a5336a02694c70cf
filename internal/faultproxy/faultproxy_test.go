package faultproxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/faultproxy"
	"github.com/bam-dev/bam/internal/testwait"
)

// patience bounds every wait for something that must happen; silence is
// how long a test listens to show that something does not.
const (
	patience = 5 * time.Second
	silence  = 300 * time.Millisecond
)

func TestPassForwardsBothWaysAndHalfCloses(t *testing.T) {
	b := setup(t)
	p, c := b.proxy, b.conn
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: many chunks
	go func() { _, _ = c.Write(big) }()
	got := make([]byte, len(big))
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echo of 1 MiB: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the echo of 1 MiB differs from what was sent")
	}

	// A FIN from the client reaches the server, whose FIN comes back.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after half-close: %d bytes, %v; want EOF", n, err)
	}
	want := int64(len(greeting) + len(big))
	testwait.Until(t, patience, "both byte counts to reach what was sent", func() bool {
		s := p.Stats()
		return s.BytesUp == want && s.BytesDown == want
	})
	testwait.Until(t, patience, "no connection active", func() bool { return p.Stats().Active == 0 })
	if s := p.Stats(); s.Accepted != 1 {
		t.Errorf("Accepted = %d, want 1", s.Accepted)
	}
}

func TestCutResetsOpenConnectionsAndRefusesNewOnes(t *testing.T) {
	b := setup(t)
	p, echo, open := b.proxy, b.echo, b.conn

	p.SetMode(faultproxy.Cut)
	if got := p.Mode(); got != faultproxy.Cut {
		t.Fatalf("Mode() = %v, want cut", got)
	}
	expectClosed(t, open)
	testwait.Until(t, patience, "the server side to be closed too", func() bool { return echo.active.Load() == 0 })

	expectRefused(t, p.Addr())
	testwait.Until(t, patience, "the refused connection to be counted", func() bool { return p.Stats().Refused == 1 })
	if s := p.Stats(); s.Active != 0 {
		t.Errorf("Active = %d in Cut, want 0", s.Active)
	}
	if got := echo.accepted.Load(); got != 1 {
		t.Errorf("the target accepted %d connections, want 1: a refused one must not reach it", got)
	}

	p.SetMode(faultproxy.Pass)
	roundTrip(t, dial(t, p.Addr()), "after the cut")
}

func TestBlackholeIsSilentThenResetsWhatItHeld(t *testing.T) {
	b := setup(t)
	p, echo, open := b.proxy, b.echo, b.conn
	up := int64(len(greeting))
	testwait.Until(t, patience, "the bytes sent to be counted", func() bool { return p.Stats().BytesUp == up })

	p.SetMode(faultproxy.Blackhole)
	if _, err := open.Write([]byte("into the void")); err != nil {
		t.Fatalf("write while blackholed: %v; want the connection open", err)
	}
	late := dial(t, p.Addr())
	if _, err := late.Write([]byte("hello?")); err != nil {
		t.Fatalf("write on a connection made while blackholed: %v", err)
	}
	testwait.Until(t, patience, "the proxy to accept the second connection", func() bool { return p.Stats().Accepted == 2 })
	expectSilence(t, open, late)
	s := p.Stats()
	if s.BytesUp != up || s.Active != 2 {
		t.Errorf("while blackholed: BytesUp = %d (was %d), Active = %d; want nothing forwarded, 2 open", s.BytesUp, up, s.Active)
	}
	if got := echo.accepted.Load(); got != 1 {
		t.Errorf("the target accepted %d connections, want 1: one made while blackholed is never dialled", got)
	}

	p.SetMode(faultproxy.Pass)
	expectClosed(t, open)
	expectClosed(t, late)
	testwait.Until(t, patience, "the server side to be closed too", func() bool { return echo.active.Load() == 0 })
	if got, want := echo.received.Load(), up; got != want {
		t.Errorf("the target received %d bytes, want %d: what was held must be dropped", got, want)
	}
	roundTrip(t, dial(t, p.Addr()), "after the partition")
}

func TestBlackholeToCutResets(t *testing.T) {
	b := setup(t)
	b.proxy.SetMode(faultproxy.Blackhole)
	b.proxy.SetMode(faultproxy.Cut)
	expectClosed(t, b.conn)
}

func TestSlowDelaysEachChunkInOrder(t *testing.T) {
	b := setup(t)
	p, c := b.proxy, b.conn
	const delay = 100 * time.Millisecond
	p.SetDelay(delay)
	p.SetMode(faultproxy.Slow)
	start := time.Now()
	roundTrip(t, c, "one")
	if rtt := time.Since(start); rtt < 2*delay {
		t.Errorf("a round trip in Slow took %v; want at least %v (the delay each way)", rtt, 2*delay)
	}

	var sent bytes.Buffer
	for i := range 20 {
		msg := fmt.Sprintf("chunk %02d;", i)
		sent.WriteString(msg)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, sent.Len())
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echo of 20 chunks: %v", err)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Errorf("echo in Slow = %q, want %q", got, sent.Bytes())
	}
}

func TestSlowToPassReleasesAWaitingChunk(t *testing.T) {
	b := setup(t)
	p, c := b.proxy, b.conn
	p.SetDelay(time.Hour)
	p.SetMode(faultproxy.Slow)
	if _, err := c.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, c)
	p.SetMode(faultproxy.Pass)
	got := make([]byte, len("stuck"))
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "stuck" {
		t.Fatalf("after Slow→Pass read %q, %v; want the chunk that was waiting", got, err)
	}
	roundTrip(t, c, "and the connection goes on")
}

func TestDialFailureResetsTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadTarget := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p := listen(t, deadTarget)

	expectRefused(t, p.Addr())
	testwait.Until(t, patience, "the dial error to be counted", func() bool { return p.Stats().DialErrors == 1 })
	testwait.Until(t, patience, "no connection active", func() bool { return p.Stats().Active == 0 })
}

func TestCloseIsIdempotentAndLeavesNoGoroutines(t *testing.T) {
	echo := startEcho(t)
	before := runtime.NumGoroutine()

	p, err := faultproxy.Listen("127.0.0.1:0", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Addr()
	passing := dial(t, addr)
	roundTrip(t, passing, "hello")
	p.SetDelay(time.Hour)
	p.SetMode(faultproxy.Slow)
	_, _ = passing.Write([]byte("waiting out its delay"))
	p.SetMode(faultproxy.Blackhole)
	held := dial(t, addr)
	testwait.Until(t, patience, "the proxy to accept the held connection", func() bool { return p.Stats().Accepted == 2 })

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectClosed(t, passing)
	expectClosed(t, held)
	if c, err := net.DialTimeout("tcp", addr, patience); err == nil {
		_ = c.Close()
		t.Errorf("dial %s after Close succeeded; want it refused", addr)
	}
	if s := p.Stats(); s.Active != 0 {
		t.Errorf("Active = %d after Close, want 0", s.Active)
	}
	p.SetMode(faultproxy.Pass) // harmless after Close
	testwait.Until(t, patience, "the goroutine count to settle back", func() bool { return runtime.NumGoroutine() <= before })
}

// TestModeChangesUnderTraffic flips the mode while clients echo through the
// proxy; run with -race. Each round trip either comes back exactly as sent
// or fails: a mode change may break a connection, never corrupt it.
func TestModeChangesUnderTraffic(t *testing.T) {
	echo := startEcho(t)
	p := listen(t, echo.addr())
	p.SetDelay(time.Millisecond)
	stop := make(chan struct{})
	var clients sync.WaitGroup
	var echoed atomic.Int64
	for id := range 8 {
		clients.Go(func() { echoUntil(t, p.Addr(), id, stop, &echoed) })
	}
	modes := []faultproxy.Mode{faultproxy.Pass, faultproxy.Cut, faultproxy.Blackhole, faultproxy.Slow}
	for i := range 300 {
		p.SetMode(modes[rand.IntN(len(modes))])
		if i%10 == 0 {
			p.SetDelay(time.Duration(rand.IntN(3)) * time.Millisecond)
			_ = p.Stats()
			p.SetMode(faultproxy.Pass)
			before := echoed.Load()
			testwait.Until(t, patience, "an echo in Pass", func() bool { return echoed.Load() > before })
		}
		runtime.Gosched()
	}
	close(stop)
	clients.Wait()
	p.SetMode(faultproxy.Pass)
	roundTrip(t, dial(t, p.Addr()), "after the storm")
}

// echoUntil sends numbered messages through addr until stop is closed,
// reconnecting after every failure, and counts the echoes in echoed. It
// fails the test only on an echo that differs from what was sent.
func echoUntil(t *testing.T, addr string, id int, stop <-chan struct{}, echoed *atomic.Int64) {
	var c net.Conn
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, patience); err != nil {
				continue
			}
		}
		msg := fmt.Sprintf("client %d message %d;", id, n)
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		got := make([]byte, len(msg))
		if _, err := c.Write([]byte(msg)); err == nil {
			_, err = io.ReadFull(c, got)
			if err == nil {
				if string(got) != msg {
					t.Errorf("client %d: echo %q, want %q", id, got, msg)
				}
				echoed.Add(1)
				continue
			}
		}
		// A failed or timed-out round trip leaves the stream unknown.
		_ = c.Close()
		c = nil
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[faultproxy.Mode]string{
		faultproxy.Pass: "pass", faultproxy.Cut: "cut", faultproxy.Blackhole: "blackhole",
		faultproxy.Slow: "slow", faultproxy.Mode(9): "Mode(9)",
	} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestSetModeRejectsAnUnknownMode(t *testing.T) {
	p := listen(t, "127.0.0.1:1")
	defer func() {
		if recover() == nil {
			t.Error("SetMode(Mode(9)) did not panic")
		}
		if got := p.Mode(); got != faultproxy.Pass {
			t.Errorf("Mode() = %v after a rejected SetMode, want pass", got)
		}
	}()
	p.SetMode(faultproxy.Mode(9))
}

func TestListenRejectsABadTarget(t *testing.T) {
	if p, err := faultproxy.Listen("127.0.0.1:0", "no port"); err == nil {
		_ = p.Close()
		t.Fatal("Listen with target \"no port\" succeeded")
	}
}

// greeting is the round trip setup makes.
const greeting = "hello"

// testBundle is what most tests start from: an echo server, a proxy in
// front of it in Pass mode, and a connection through the proxy that has
// made one round trip of greeting.
type testBundle struct {
	echo  *echoServer
	proxy *faultproxy.Proxy
	conn  net.Conn
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	echo := startEcho(t)
	p := listen(t, echo.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, greeting)
	return &testBundle{echo: echo, proxy: p, conn: c}
}

// listen starts a proxy to target, closed when the test ends.
func listen(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Listen("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg on c and expects it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(patience))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// expectClosed reads c until it ends and fails the test unless it ends with
// EOF or a reset (not a timeout) within patience.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection is still open after %v", patience)
	}
}

// expectRefused connects to addr and expects the connection to be closed
// at once: the kernel completes the handshake, the proxy resets it, and the
// reset can arrive before connect returns.
func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte("anyone?"))
	expectClosed(t, c)
}

// expectSilence listens to every c at once for silence, and fails the test
// if any of them receives a byte or ends meanwhile.
func expectSilence(t *testing.T, conns ...net.Conn) {
	t.Helper()
	deadline := time.Now().Add(silence)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d: read %d bytes, %v; want nothing for %v and the connection open", i, n, err, silence)
		}
		_ = c.SetReadDeadline(time.Time{})
	}
}

// echoServer is the target of the tests: it writes back what it reads.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64 // connections accepted
	active   atomic.Int64 // connections open now
	received atomic.Int64 // bytes read
}

// startEcho starts an echo server on 127.0.0.1, stopped (and waited for)
// when the test ends.
func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.active.Add(1)
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			e.wg.Go(func() {
				defer e.active.Add(-1)
				_, _ = io.Copy(c, countingReader{c, &e.received})
				_ = c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// TestBlackholeMidWriteCutsALargeWrite: small writes pass the armed trip
// wire; the first large one arrives in part, then the proxy is a black
// hole; the wire is disarmed by then, and by SetMode.
func TestBlackholeMidWriteCutsALargeWrite(t *testing.T) {
	b := setup(t)
	p, c := b.proxy, b.conn
	disarmed := p.BlackholeMidWrite(1024)
	p.SetMode(faultproxy.Pass)
	roundTrip(t, c, strings.Repeat("x", 4096))
	select {
	case <-disarmed:
		t.Fatal("a disarmed trip wire fired")
	default:
	}
	fired := p.BlackholeMidWrite(1024)
	roundTrip(t, c, "small") // below the wire
	before := b.echo.received.Load()
	big := strings.Repeat("y", 8000)
	if _, err := c.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
	case <-time.After(patience):
		t.Fatal("the trip wire did not fire")
	}
	if p.Mode() != faultproxy.Blackhole {
		t.Fatalf("mode %v after the wire fired, want Blackhole", p.Mode())
	}
	testwait.Until(t, patience, "part of the large write to arrive", func() bool { return b.echo.received.Load() > before })
	expectSilence(t, c)
	if got := b.echo.received.Load() - before; got <= 0 || got >= int64(len(big)) {
		t.Fatalf("the target received %d bytes of %d, want a part", got, len(big))
	}
	p.SetMode(faultproxy.Pass)
	expectClosed(t, c)
}
