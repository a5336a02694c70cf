package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is the fault a Proxy injects; see the package documentation.
type Mode int

const (
	Pass      Mode = iota // forward bytes both ways
	Cut                   // reset every connection, and every new one at once
	Blackhole             // forward nothing, close nothing: a partition
	Slow                  // forward each chunk once the delay has passed
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case Blackhole:
		return "blackhole"
	case Slow:
		return "slow"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// DefaultDelay is the delay a new Proxy adds to each chunk in Slow mode.
const DefaultDelay = 200 * time.Millisecond

const (
	// dialTimeout bounds dialling the target for one client connection.
	dialTimeout = 10 * time.Second
	// chunkSize is the most one read takes from one side before it is
	// forwarded (or held, or delayed) as one chunk.
	chunkSize = 32 << 10
	// maxAcceptBackoff bounds the wait after a failed Accept (such as
	// running out of file descriptors) before the next try.
	maxAcceptBackoff = time.Second
)

// Stats counts what a Proxy has done since Listen.
type Stats struct {
	Accepted   int64 // client connections accepted, refused ones included
	Active     int64 // client connections open now (held ones included)
	BytesUp    int64 // bytes written to the target
	BytesDown  int64 // bytes written to clients
	Refused    int64 // client connections reset at once because the mode was Cut
	DialErrors int64 // client connections reset because dialling the target failed
}

// Proxy is a TCP proxy from one listening address to one target that
// injects the fault of its Mode. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and one goroutine per connection
	done   chan struct{}  // closed by Close

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every SetMode and SetDelay
	links   map[*link]struct{}
	closed  bool
	// tripAt > 0 arms BlackholeMidWrite: the chunk size that trips it;
	// tripped is closed when it does.
	tripAt  int
	tripped chan struct{}

	accepted, refused, dialErrors atomic.Int64
	bytesUp, bytesDown            atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Listen starts a proxy on addr (such as "127.0.0.1:0" for a port the
// system picks) forwarding to target ("host:port"), in Pass mode.
func Listen(addr, target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", addr, err)
	}
	p := &Proxy{
		ln:      ln,
		target:  target,
		done:    make(chan struct{}),
		mode:    Pass,
		delay:   DefaultDelay,
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on, as host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode is the fault the proxy injects now.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode switches the proxy to m. It takes effect before SetMode returns:
// switching to Cut, or from Blackhole to any other mode, resets the
// connections open then; after a switch to Blackhole no further chunk is
// forwarded (one being written at that instant completes). SetMode panics
// on a Mode that is not one of the four.
func (p *Proxy) SetMode(m Mode) {
	switch m {
	case Pass, Cut, Blackhole, Slow:
	default:
		panic(fmt.Sprintf("faultproxy: SetMode(%v)", m))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.mode
	p.mode = m
	p.tripAt = 0 // disarmed
	if m == Cut || (old == Blackhole && m != Blackhole) {
		// Under p.mu, before anyone sees the new mode: a chunk held in
		// Blackhole must find its link closed, never the mode Pass.
		p.resetAllLocked()
	}
	p.notifyLocked()
}

// BlackholeMidWrite arms the trip wire (see the package documentation): the
// next chunk of at least n bytes from a client is forwarded in part, then
// the proxy is in Blackhole. The channel is closed when that happened; a
// SetMode before it disarms the wire, and the channel then stays open.
func (p *Proxy) BlackholeMidWrite(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tripAt = max(n, 2)
	p.tripped = make(chan struct{})
	return p.tripped
}

// trip reports how much of a chunk of n bytes from a client to forward:
// n, unless the trip wire is armed and the chunk trips it; then half of it,
// and the proxy is in Blackhole before trip returns.
func (p *Proxy) trip(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tripAt == 0 || n < p.tripAt {
		return n
	}
	p.tripAt = 0
	p.mode = Blackhole
	close(p.tripped)
	p.notifyLocked()
	return n / 2
}

// SetDelay sets the delay added to each chunk in Slow mode; a negative d is
// taken as zero. Chunks already waiting are held until the new delay has
// passed since they were read.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = max(d, 0)
	p.notifyLocked()
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := int64(len(p.links))
	p.mu.Unlock()
	return Stats{
		Accepted:   p.accepted.Load(),
		Active:     active,
		BytesUp:    p.bytesUp.Load(),
		BytesDown:  p.bytesDown.Load(),
		Refused:    p.refused.Load(),
		DialErrors: p.dialErrors.Load(),
	}
}

// Close stops listening, resets every connection and waits until all the
// proxy's goroutines have ended. Calls after the first wait the same way
// and return the same error.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.done)
		p.resetAllLocked()
		p.notifyLocked()
		p.mu.Unlock()
		if err := p.ln.Close(); err != nil {
			p.closeErr = fmt.Errorf("faultproxy: close listener: %w", err)
		}
		p.wg.Wait()
	})
	return p.closeErr
}

// notifyLocked wakes every chunk waiting on the mode or the delay.
func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// resetAllLocked resets and forgets every open connection.
func (p *Proxy) resetAllLocked() {
	for l := range p.links {
		l.close(true)
	}
	clear(p.links)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			select {
			case <-p.done:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		p.accepted.Add(1)
		p.mu.Lock()
		if p.closed || p.mode == Cut {
			p.mu.Unlock()
			p.refused.Add(1)
			reset(c)
			continue
		}
		l := newLink(c)
		p.links[l] = struct{}{}
		held := p.mode == Blackhole
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l, held)
	}
}

// serve dials the target for one client connection and forwards between
// them until both directions have ended or the link is reset. A link
// accepted in Blackhole is held without dialling until it is reset.
func (p *Proxy) serve(l *link, held bool) {
	defer p.wg.Done()
	defer p.forget(l)
	if held {
		<-l.done
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(l.ctx, "tcp", p.target)
	if err != nil {
		if l.ctx.Err() == nil { // not reset by SetMode or Close meanwhile
			p.dialErrors.Add(1)
			l.close(true)
		}
		return
	}
	if !l.attach(server) {
		return
	}
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		p.pipe(l, server, l.client, &p.bytesUp, true)
	}()
	p.pipe(l, l.client, server, &p.bytesDown, false)
	<-upDone
}

// forget drops a link whose goroutine is ending and closes it (gracefully,
// if nothing reset it before).
func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
	l.close(false)
}

// pipe forwards src to dst one chunk at a time, each chunk (and the end of
// src) passed through gate first. A read or write error resets the link;
// the end of src is passed on as a half-close of dst. up is the direction
// from the client, where the trip wire (BlackholeMidWrite) lies.
func (p *Proxy) pipe(l *link, dst, src net.Conn, count *atomic.Int64, up bool) {
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if !p.gate(l, time.Now()) {
			return
		}
		if up && n > 0 {
			if part := p.trip(n); part < n {
				// The rest is held, like a chunk read in Blackhole.
				if _, werr := dst.Write(buf[:part]); werr != nil {
					l.close(true)
					return
				}
				count.Add(int64(part))
				<-l.done
				return
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close(true)
				return
			}
			count.Add(int64(n))
		}
		switch {
		case errors.Is(err, io.EOF):
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		case err != nil:
			l.close(true)
			return
		}
	}
}

// gate waits until a chunk read at readAt may be forwarded: at once in
// Pass, once the delay has passed since readAt in Slow, never in Blackhole
// or Cut. It reports false when the link is closed meanwhile: the chunk is
// dropped with it.
func (p *Proxy) gate(l *link, readAt time.Time) bool {
	for {
		p.mu.Lock()
		mode, delay, changed := p.mode, p.delay, p.changed
		p.mu.Unlock()
		// A link reset by SetMode was closed under p.mu before the new
		// mode was visible, so it is seen closed here.
		select {
		case <-l.done:
			return false
		default:
		}
		var due *time.Timer // nil, and its channel with it: wait for a change
		switch mode {
		case Pass:
			return true
		case Slow:
			wait := time.Until(readAt.Add(delay))
			if wait <= 0 {
				return true
			}
			due = time.NewTimer(wait)
		}
		if l.await(changed, due) {
			return false
		}
	}
}

// await waits until the link is closed (and reports true), changed is
// closed, or due fires; due may be nil.
func (l *link) await(changed <-chan struct{}, due *time.Timer) bool {
	var fired <-chan time.Time
	if due != nil {
		defer due.Stop()
		fired = due.C
	}
	select {
	case <-l.done:
		return true
	case <-changed:
	case <-fired:
	}
	return false
}

// link is one client connection and, once dialled, its connection to the
// target.
type link struct {
	client net.Conn
	ctx    context.Context // cancelled by close: stops a dial in progress
	cancel context.CancelFunc
	done   chan struct{} // closed by close

	mu     sync.Mutex
	server net.Conn
	closed bool
}

func newLink(client net.Conn) *link {
	ctx, cancel := context.WithCancel(context.Background())
	return &link{client: client, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// attach records the connection to the target; it reports false, and
// closes server, if the link was closed meanwhile.
func (l *link) attach(server net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = server.Close()
		return false
	}
	l.server = server
	return true
}

// close closes both connections, with a reset if rst; only the first call
// does anything. It never takes Proxy.mu, so it may be called under it.
func (l *link) close(rst bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	l.cancel()
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if rst {
			reset(c)
		} else {
			_ = c.Close()
		}
	}
}

// reset closes c with a TCP reset rather than a FIN, where it can.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
