//go:build unix

package testproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// HoldsSQLiteWriteLock reports whether pid holds the WAL write lock of the
// SQLite database at path: a POSIX write lock covering byte 120 of its -shm
// file, as /proc/locks shows it. A process stopped while holding it blocks
// every writer of the file until it resumes.
func HoldsSQLiteWriteLock(pid int, path string) (bool, error) {
	fi, err := os.Stat(path + "-shm")
	if err != nil {
		return false, fmt.Errorf("stat the SQLite shared-memory file: %w", err)
	}
	inode := strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Ino), 10)
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false, fmt.Errorf("read /proc/locks: %w", err)
	}
	// "1: POSIX  ADVISORY  WRITE 4242 fd:01:123456 120 120"
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "POSIX" || f[3] != "WRITE" || f[4] != strconv.Itoa(pid) {
			continue
		}
		dev := strings.Split(f[5], ":")
		if dev[len(dev)-1] != inode {
			continue
		}
		// Adjacent locks of one process are merged: the range may be
		// 120-121 or longer.
		start, err1 := strconv.ParseInt(f[6], 10, 64)
		end, err2 := strconv.ParseInt(f[7], 10, 64)
		if f[7] == "EOF" {
			end, err2 = 1<<62, nil
		}
		if err1 == nil && err2 == nil && start <= 120 && 120 <= end {
			return true, nil
		}
	}
	return false, nil
}
