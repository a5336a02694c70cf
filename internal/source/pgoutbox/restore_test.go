package pgoutbox

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// switchProxy forwards TCP connections to a target that can be switched,
// closing the connections to the old one: a server replaced behind one
// address (a restore onto a new host that takes the old one's name, a
// promoted replica behind a virtual IP).
type switchProxy struct {
	ln     net.Listener
	target atomic.Value // string
	mu     sync.Mutex
	conns  []net.Conn
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln}
	p.target.Store(target)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target.Load().(string))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	return p
}

func (p *switchProxy) switchTo(target string) {
	p.target.Store(target)
	p.closeAll()
}

func (p *switchProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// startCluster initdb's and starts a PostgreSQL 15 server of its own, in a
// temporary directory, as internal/chaos does; the test is skipped where
// PostgreSQL's binaries are not installed.
func startCluster(t *testing.T) string {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	if p, err := exec.LookPath("initdb"); err == nil {
		bin = filepath.Dir(p)
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Skipf("SKIPPED: PostgreSQL's initdb not found (%v)", err)
	}
	dir, err := os.MkdirTemp("", "bam-pgoutbox-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "pgdata")
	var runAs []string
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skipf("SKIPPED: running as root without a postgres user: %v", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) {
		t.Helper()
		argv := append(append(append([]string{}, runAs...), filepath.Join(bin, name)), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C")
	opts := "-p " + strconv.Itoa(port) + " -c listen_addresses=127.0.0.1 -c unix_socket_directories=" + dir + " -c fsync=off"
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	t.Cleanup(func() { run("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "60", "stop") })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// TestServerReplacedBehindOneAddress points a source, through one address,
// at a server and then at another one (its own initdb: another system
// identifier, its transaction ids far behind): a database of the same name
// with an outbox and new rows, as a restore onto a new server would look.
// The open reader must stop on its first connection to it, before reading
// or trimming, and a reader opened then must refuse.
func TestServerReplacedBehindOneAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	other := startCluster(t)

	u, err := url.Parse(b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	proxy := newSwitchProxy(t, u.Host)
	via := *u
	via.Host = proxy.ln.Addr().String()

	// However young the test server, the checkpoint is ahead of every id
	// the new server hands out in this test.
	if _, err := b.app.Exec(ctx, `DO $$ BEGIN FOR i IN 1..500 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
	insert(t, b.app, DefaultTable, "PO-1", eventJSON("PO-1", 1))
	first, err := Open(ctx, via.String(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	recorded := first.Identity()
	first.Close()
	src := store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, DSN: via.String(), Outbox: recorded}
	r, err := OpenSource(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs := readAll(t, r, 0, store.Position{})
	if len(recs) != 1 {
		t.Fatalf("read %d rows, want 1", len(recs))
	}

	// The new server: the same database name, an outbox, new rows.
	admin, err := pgx.Connect(ctx, "postgres://postgres@"+other+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	newDB := "postgres://postgres@" + other + "/" + name + "?sslmode=disable"
	app, err := pgx.Connect(ctx, newDB)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if err := Install(ctx, app, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"PO-2", "PO-3"} {
		insert(t, app, DefaultTable, id, eventJSON(id, 1))
	}
	proxy.switchTo(other)

	var readErr error
	testwait.Until(t, horizonPatience, "the reader to find another server", func() bool {
		_, _, readErr = r.Read(ctx, 0, recs[0].Position, 10)
		return errors.Is(readErr, store.ErrOutboxChanged)
	})
	if !strings.Contains(readErr.Error(), "system identifier was "+recorded.SystemID) {
		t.Errorf("the error does not name the system identifiers: %v", readErr)
	}
	if err := r.Trim(ctx, 0, recs[0].Position); !errors.Is(err, store.ErrOutboxChanged) {
		t.Errorf("Trim on the new server = %v, want ErrOutboxChanged", err)
	}
	if r2, err := OpenSource(ctx, src); !errors.Is(err, store.ErrOutboxChanged) {
		if r2 != nil {
			r2.Close()
		}
		t.Fatalf("OpenSource on the new server = %v, want ErrOutboxChanged", err)
	}
	// Its ids are far behind the checkpoint: a reader that did not know the
	// server's identity is stopped by them instead of skipping the rows.
	blind, err := Open(ctx, via.String(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer blind.Close()
	if _, _, err := blind.Read(ctx, 0, recs[0].Position, 10); !errors.Is(err, ErrRewound) {
		t.Errorf("Read at the old checkpoint on the new server = %v, want ErrRewound", err)
	}
	var n int
	if err := app.QueryRow(ctx, "SELECT count(*) FROM bam_outbox").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows on the new server (%v), want 2: nothing may be trimmed there", n, err)
	}
}
