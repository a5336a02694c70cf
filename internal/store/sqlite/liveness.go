package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/bam-dev/bam/internal/store"
)

// Liveness is an OS file lock per key, on <store file>-nodes/<key>.lock.
// The kernel drops the lock the moment the holding process dies, however it
// dies, so a peer that can take the lock knows the holder is gone. flock
// locks belong to an open file, so two opens in one process conflict too.
//
// Probes delete the file of a dead holder so that files do not pile up.
// Deleting races with a new holder opening the same path; both sides
// therefore check, while holding the lock, that the path still names the
// file they locked (and try again on the new file if not). A file is only
// ever deleted by whoever holds its lock, so a holder that passes the check
// keeps a file that nobody else can delete.

// errLivenessHeld says another process (or another open in this one) holds
// a liveness lock.
var _ store.Liveness = (*Store)(nil)

var errLivenessHeld = errors.New("held by another process")

// lockAttempts bounds the retries when the lock file is replaced between
// open and lock, which takes a probe and a new holder racing on one key.
const lockAttempts = 10

func (s *Store) lockPath(key int64) string {
	return filepath.Join(s.path+"-nodes", strconv.FormatInt(key, 10)+".lock")
}

// HoldLiveness implements store.Liveness. lost is closed when the hold ends:
// when ctx ends or the store is closed. The kernel does not take a file
// lock back from a live process, so it is never closed earlier.
func (s *Store) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	path := s.lockPath(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("hold liveness lock %d: %w", key, err)
	}
	f, err := lockFile(path)
	if err != nil {
		return nil, fmt.Errorf("hold liveness lock %d (%s): %w", key, path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		removeIfSame(f, path)
		_ = f.Close()
		return nil, fmt.Errorf("hold liveness lock %d: %w", key, errClosed)
	default:
	}
	lost := make(chan struct{})
	s.holds.Add(1)
	go func() {
		defer s.holds.Done()
		defer close(lost)
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		removeIfSame(f, path)
		_ = f.Close() // releases the lock
	}()
	return lost, nil
}

// lockFile opens (creating) and locks path, retrying when a probe deleted
// the file between the open and the lock.
func lockFile(path string) (*os.File, error) {
	for range lockAttempts {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		ok, err := tryLock(f)
		if err != nil || !ok {
			_ = f.Close()
			if err == nil {
				err = errLivenessHeld
			}
			return nil, err
		}
		if same, err := isSameFile(f, path); err != nil {
			_ = f.Close()
			return nil, err
		} else if same {
			return f, nil
		}
		_ = f.Close()
	}
	return nil, errors.New("lock file keeps being replaced")
}

// LivenessHeld implements store.Liveness. A key whose file is missing, or
// whose lock can be taken, is not held.
func (s *Store) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(keys))
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		held, err := probe(s.lockPath(key))
		if err != nil {
			return nil, fmt.Errorf("probe liveness lock %d: %w", key, err)
		}
		out[key] = held
	}
	return out, nil
}

// probe tries path's lock without waiting. Taken: nobody holds it; the file
// is deleted before the lock is let go.
func probe(path string) (bool, error) {
	for range lockAttempts {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		ok, err := tryLock(f)
		if err != nil || !ok {
			_ = f.Close()
			return !ok && err == nil, err
		}
		same, err := isSameFile(f, path)
		if same {
			_ = os.Remove(path)
		}
		_ = f.Close()
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
		// The file we locked was deleted and path names a newer one,
		// perhaps of a new holder: probe that.
	}
	return false, errors.New("lock file keeps being replaced")
}

// isSameFile reports whether path still names the open file f.
func isSameFile(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// removeIfSame deletes path if it still names f, whose lock the caller
// holds.
func removeIfSame(f *os.File, path string) {
	if same, err := isSameFile(f, path); err == nil && same {
		_ = os.Remove(path)
	}
}
