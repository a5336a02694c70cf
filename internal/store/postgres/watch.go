package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// Notices: LISTEN for the NOTIFYs that appends (bam_buffer), session
// changes (bam_sessions) and pool setting changes (bam_settings) send. The liveness locks are in liveness.go.

var _ store.Watcher = (*Store)(nil)

// errClosed is returned by a watch that ends because the store was closed.
var errClosed = errors.New("store is closed")

// Watch implements store.Watcher with LISTEN on a dedicated connection:
// bam_buffer carries the source name of each append, bam_sessions and
// bam_settings carry nothing. It returns ctx's error when ctx ends, errClosed when the store
// is closed, and the connection's error when it fails. Notices sent while
// no watch is listening are lost, which costs latency only (nodes also read
// on timers).
func (s *Store) Watch(parent context.Context, fn func(store.Notice)) error {
	ctx, stop := s.scope(parent)
	defer stop()
	ended := func() error {
		if err := parent.Err(); err != nil {
			return err
		}
		return errClosed
	}
	if ctx.Err() != nil {
		return ended()
	}
	conn, err := s.connect(ctx, "bam-listen")
	if err != nil {
		if ctx.Err() != nil {
			return ended()
		}
		return fmt.Errorf("watch: %w", err)
	}
	defer closeConn(conn)
	for _, ch := range []string{"bam_buffer", "bam_sessions", "bam_settings"} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			if ctx.Err() != nil {
				return ended()
			}
			return fmt.Errorf("watch: listen %s: %w", ch, err)
		}
	}
	// Anything may have changed before the listening began (a peer released
	// a session while this node was joining, events were appended while the
	// connection was down): say so once, so the caller looks now.
	fn(store.Notice{Topic: store.TopicSessions})
	fn(store.Notice{Topic: store.TopicBuffer})
	fn(store.Notice{Topic: store.TopicSettings})
	for {
		wait, cancel := context.WithTimeout(ctx, checkEvery)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ended()
		case err != nil && wait.Err() != nil && !conn.IsClosed():
			// Quiet for a while: make sure the connection still works.
			pctx, cancel := context.WithTimeout(ctx, checkTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("watch: store connection lost: %w", s.scrub(err))
			}
		case err != nil:
			return fmt.Errorf("watch: store connection lost: %w", s.scrub(err))
		case n.Channel == "bam_buffer":
			fn(store.Notice{Topic: store.TopicBuffer, Source: n.Payload})
		case n.Channel == "bam_sessions":
			fn(store.Notice{Topic: store.TopicSessions})
		case n.Channel == "bam_settings":
			fn(store.Notice{Topic: store.TopicSettings})
		}
	}
}
