package testpg

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Stalled is a backend left the way a client paused or cut off in the
// middle of a pipelined request leaves it: the server ran the request's
// first statement (holding its locks, inside the implicit transaction) and
// waits for the rest, "active" with wait_event ClientRead. Neither
// idle_in_transaction_session_timeout nor statement_timeout ends it.
type Stalled struct {
	conn *pgconn.PgConn
	// PID is the backend's process id.
	PID uint32
}

// Stall connects to url under appName, sends stmt (with no parameters) in
// the extended protocol without the Sync that would end its implicit
// transaction, then the first bytes of a next message only, and returns
// once the statement holds a transaction id (it has written) and the
// backend waits for the client, "active". The
// connection is closed when the test ends, unless the server ended it
// first.
func Stall(t testing.TB, url, appName, stmt string) *Stalled {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = appName
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("stall: connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	s := &Stalled{conn: conn, PID: conn.PID()}
	fe := conn.Frontend()
	fe.Send(&pgproto3.Parse{Query: stmt})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatalf("stall: send: %v", err)
	}
	// A Parse message announcing 4 KiB, of which 4 bytes arrive: the
	// server waits for the rest, as for a batch cut mid-message.
	if _, err := conn.Conn().Write([]byte{'P', 0, 0, 0x10, 0, 'S', 'E', 'L', 'E'}); err != nil {
		t.Fatalf("stall: send: %v", err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for {
		var held bool
		err := admin.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'transactionid' AND granted)
			   AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND wait_event = 'ClientRead')`,
			int32(s.PID)).Scan(&held)
		if err != nil {
			t.Fatalf("stall: wait for the statement: %v", err)
		}
		if held {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stall: the statement holds no transaction id after 10s: %s", stmt)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Alive reports whether the stalled backend still runs, read from
// pg_stat_activity through url.
func (s *Stalled) Alive(t testing.TB, url string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var alive bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, int32(s.PID)).Scan(&alive); err != nil {
		t.Fatal(err)
	}
	return alive
}
