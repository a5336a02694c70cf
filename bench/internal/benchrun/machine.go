package benchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/testpg"
)

// Machine describes where the benchmarks run. Every field is a readable
// value, or says why it is unknown.
type Machine struct {
	Commit     string // short hash, "-dirty" if the tree has changes
	Go         string // `go version`
	CPU        string
	Memory     string
	Kernel     string
	PostgreSQL string // SELECT version() on the benchmarks' server, or "unreachable (…)"
	SQLite     string // the modernc.org/sqlite module the benchmarks build with
}

// ProbeMachine looks at this machine, from the module root dir.
func ProbeMachine(ctx context.Context, dir string) Machine {
	return Machine{
		Commit:     GitCommit(ctx, dir),
		Go:         strings.TrimPrefix(Command(ctx, dir, "go", "version"), "go version "),
		CPU:        cpuInfo(),
		Memory:     memInfo(),
		Kernel:     kernel(ctx),
		PostgreSQL: postgresVersion(ctx),
		SQLite:     Command(ctx, dir, "go", "list", "-m", "modernc.org/sqlite"),
	}
}

// ModuleRoot is the root directory of the module the go command is in.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run it inside the bam module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// Command runs name with args in dir and returns its trimmed output, or
// "unknown (…)".
func Command(ctx context.Context, dir, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Sprintf("unknown (%s %s: %v)", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// GitCommit is the short hash of dir's HEAD, "-dirty" if its tree has
// changes.
func GitCommit(ctx context.Context, dir string) string {
	hash := Command(ctx, dir, "git", "rev-parse", "--short", "HEAD")
	if strings.HasPrefix(hash, "unknown") {
		return hash
	}
	// Like the go command's vcs.modified, untracked files count.
	status := exec.CommandContext(ctx, "git", "status", "--porcelain")
	status.Dir = dir
	out, err := status.Output()
	switch {
	case err != nil:
		return hash + " (git status failed: " + err.Error() + ")"
	case len(strings.TrimSpace(string(out))) > 0:
		return hash + "-dirty"
	}
	return hash
}

// cpuInfo is the CPU model and how many logical CPUs /proc/cpuinfo lists.
func cpuInfo() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return fmt.Sprintf("%d logical CPUs (model unknown: %v)", runtime.NumCPU(), err)
	}
	defer f.Close()
	model, n := "", 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(val)
			}
		}
	}
	if model == "" {
		model = "model unknown"
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	return fmt.Sprintf("%s, %d logical CPUs", model, n)
}

// memInfo is the total memory and what was available, from /proc/meminfo.
func memInfo() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	kb := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if f := strings.Fields(val); ok && len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				kb[key] = v
			}
		}
	}
	gib := func(k float64) string { return strconv.FormatFloat(k/(1<<20), 'f', 1, 64) + " GiB" }
	total, ok := kb["MemTotal"]
	if !ok {
		return "unknown (no MemTotal in /proc/meminfo)"
	}
	s := gib(total)
	if avail, ok := kb["MemAvailable"]; ok {
		s += " (" + gib(avail) + " available at the start)"
	}
	return s
}

func kernel(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "uname", "-sr").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		return "Linux " + strings.TrimSpace(string(data))
	}
	return "unknown"
}

// LoadAvg is the 1, 5 and 15 minute load averages.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// postgresVersion asks the server the benchmarks use (BAM_TEST_PG, the
// tests' default otherwise) for its version.
func postgresVersion(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testpg.AdminURL())
	if err != nil {
		return "unreachable (" + Clip(err.Error()) + ")"
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "unreachable (SELECT version(): " + Clip(err.Error()) + ")"
	}
	cfg := conn.Config()
	return fmt.Sprintf("%s, at %s", v, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
}
