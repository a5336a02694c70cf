package chaos

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

// pgServer is a PostgreSQL server the harness started itself in a
// directory of its own, so that it may restart it. A server the harness did
// not start is never restarted.
type pgServer struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // the cluster's data directory
	log  string // the server's log file
	port int
	// asUser runs the server's commands as the postgres user when the
	// harness runs as root (PostgreSQL refuses to run as root).
	asUser string
}

// defaultPGBin finds PostgreSQL 15's binaries: Debian's place, else PATH.
func defaultPGBin() string {
	const debian = "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(debian, "pg_ctl")); err == nil {
		return debian
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	return debian
}

// startPGServer creates a cluster under parent and starts it on a free
// loopback port.
func startPGServer(ctx context.Context, bin, parent string) (*pgServer, error) {
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		return nil, fmt.Errorf("PostgreSQL's initdb not found in %s (set --pg-bin, or use --store sqlite or a postgres:// URL): %w", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, dir: filepath.Join(parent, "pgdata"), log: filepath.Join(parent, "postgres.log"), port: port}
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

// restart restarts the server: mode "fast" (clients disconnected, a clean
// shutdown) or "immediate" (a crash: recovery from the WAL on start).
func (s *pgServer) restart(ctx context.Context, mode string) error {
	return s.run(ctx, "pg_ctl", "-D", s.dir, "-l", s.log, "-m", mode, "-w", "-t", "60", "restart")
}

// stop stops the server; it is not an error if it is not running.
func (s *pgServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.run(ctx, "pg_ctl", "-D", s.dir, "-m", "fast", "-w", "-t", "60", "stop")
}

// url returns the URL of a database of this server, for a given address
// (the server's own, or a proxy's in front of it).
func pgURL(addr, database string) string {
	return "postgres://postgres@" + addr + "/" + database + "?sslmode=disable"
}

func (s *pgServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *pgServer) run(ctx context.Context, name string, args ...string) error {
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
