// Package pgserver starts a PostgreSQL server of one's own (initdb and
// pg_ctl of PostgreSQL 15, in a directory of its own, on a free loopback
// port), so that the caller may restart it: the chaos harness's "restart"
// fault and the tests and benchmarks of a store restart. A server it did
// not start is never touched.
package pgserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Server is a PostgreSQL server started by Start.
type Server struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // the cluster's data directory
	log  string // the server's log file
	port int
	// asUser runs the server's commands as the postgres user when the
	// caller runs as root (PostgreSQL refuses to run as root).
	asUser string
}

// DefaultBin finds PostgreSQL 15's binaries: Debian's place, else PATH.
func DefaultBin() string {
	const debian = "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(debian, "pg_ctl")); err == nil {
		return debian
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	return debian
}

// Available reports whether bin holds initdb, so that Start can work.
func Available(bin string) bool {
	_, err := os.Stat(filepath.Join(bin, "initdb"))
	return err == nil
}

// Start creates a cluster under parent and starts it on a free loopback
// port, with trust authentication for the user postgres.
func Start(ctx context.Context, bin, parent string) (*Server, error) {
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		return nil, fmt.Errorf("PostgreSQL's initdb not found in %s (set --pg-bin, or use --store sqlite or a postgres:// URL): %w", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: filepath.Join(parent, "pgdata"), log: filepath.Join(parent, "postgres.log"), port: port}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		if _, err := user.Lookup(s.asUser); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the user postgres: %w", err)
		}
		// The postgres user must reach the data directory and the log.
		if err := os.Chmod(parent, 0o755); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, "chown", s.asUser, s.dir, parent).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v: %s", s.dir, err, out)
		}
	}
	if err := s.run(ctx, "initdb", "-D", s.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"); err != nil {
		return nil, err
	}
	opts := strings.Join([]string{
		"-p " + strconv.Itoa(port),
		"-c listen_addresses=127.0.0.1",
		"-c unix_socket_directories=" + parent,
		"-c max_connections=300",
		"-c fsync=on",
	}, " ")
	if err := s.run(ctx, "pg_ctl", "-D", s.dir, "-l", s.log, "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart restarts the server: mode "fast" (clients disconnected, a clean
// shutdown) or "immediate" (a crash: recovery from the WAL on start). It
// returns once the server accepts connections again.
func (s *Server) Restart(ctx context.Context, mode string) error {
	return s.run(ctx, "pg_ctl", "-D", s.dir, "-l", s.log, "-m", mode, "-w", "-t", "60", "restart")
}

// Stop stops the server; it is not an error if it is not running.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.run(ctx, "pg_ctl", "-D", s.dir, "-m", "fast", "-w", "-t", "60", "stop")
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the URL of a database of a server started by Start, at addr
// (the server's own, or a proxy's in front of it).
func URL(addr, database string) string {
	return "postgres://postgres@" + addr + "/" + database + "?sslmode=disable"
}

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
