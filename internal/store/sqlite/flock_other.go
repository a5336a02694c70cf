//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// tryLock has no flock to use on this system: liveness locks are not
// available, and nodes fall back on heartbeats and lease expiry.
func tryLock(*os.File) (bool, error) {
	return false, fmt.Errorf("liveness file locks on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
