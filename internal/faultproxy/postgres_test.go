package faultproxy_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/faultproxy"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestPostgresThroughTheProxy runs a real PostgreSQL connection through the
// proxy: queries work in Pass, the next query after a Cut fails, and a new
// connection works once the proxy is back in Pass. Skipped when PostgreSQL
// is unreachable, except under CI=true (see testpg).
func TestPostgresThroughTheProxy(t *testing.T) {
	cfg, err := pgx.ParseConfig(testpg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("SKIPPED: BAM_TEST_PG names a Unix socket (%s); the proxy forwards TCP only", cfg.Host)
	}
	p := listen(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	host, port, err := net.SplitHostPort(p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	portNum, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.Fallbacks = host, uint16(portNum), nil

	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	connect := func() *pgx.Conn {
		t.Helper()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect through the proxy: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
	selectOne := func(conn *pgx.Conn) error {
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return err
		}
		if one != 1 {
			t.Fatalf("SELECT 1 = %d", one)
		}
		return nil
	}

	before := connect()
	if err := selectOne(before); err != nil {
		t.Fatalf("SELECT 1 in Pass: %v", err)
	}
	if s := p.Stats(); s.Accepted != 1 || s.BytesUp == 0 {
		t.Fatalf("Stats = %+v; want the connection to have gone through the proxy", s)
	}

	p.SetMode(faultproxy.Cut)
	if err := selectOne(before); err == nil {
		t.Fatal("SELECT 1 after Cut succeeded; want it to fail")
	}

	p.SetMode(faultproxy.Pass)
	if err := selectOne(connect()); err != nil {
		t.Fatalf("SELECT 1 on a new connection after Cut → Pass: %v", err)
	}
}
