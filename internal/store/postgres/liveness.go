package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Liveness: a session-level advisory lock per node, held on a dedicated
// connection for as long as the node runs.

var _ store.Liveness = (*Store)(nil)

// HoldLiveness implements store.Liveness with a session-level advisory lock
// on a dedicated connection: PostgreSQL releases it the moment that
// connection ends, which is the moment the process dies (or the network
// drops it). It waits while another session holds the key.
//
// A goroutine keeps reading the connection, so that it closes lost the
// moment the server ends it (pg_terminate_backend, a restart, a proxy
// recycling it: the server's last words or the socket's end arrive at
// once), and the node takes its lock again before peers conclude that it
// died; when nothing arrived for checkEvery, it pings, so a connection that
// died silently is noticed too. When ctx ends or the store is closed, it
// unlocks and closes the connection (and leaves lost open: the lock was
// given up, not lost).
func (s *Store) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	conn, err := s.connect(ctx, "bam-liveness")
	if err != nil {
		return nil, fmt.Errorf("hold liveness lock %d: %w", key, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("hold liveness lock %d: %w", key, err)
	}
	if !s.goStart() {
		closeConn(conn)
		return nil, fmt.Errorf("hold liveness lock %d: store is closed", key)
	}
	lost := make(chan struct{})
	hold, stop := s.scope(ctx)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer closeConn(conn)
		for {
			// Nothing is expected on this connection (it listens to
			// nothing): a read that ends before its deadline is the
			// connection ending.
			wait, cancel := context.WithTimeout(hold, checkEvery)
			_, err := conn.WaitForNotification(wait)
			quiet := wait.Err() != nil
			cancel()
			switch {
			case hold.Err() != nil:
				uctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
				_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key)
				cancel()
				return
			case err != nil && quiet && !conn.IsClosed():
				pctx, cancel := context.WithTimeout(hold, checkTimeout)
				err = conn.Ping(pctx)
				cancel()
				if err != nil && hold.Err() == nil {
					close(lost)
					return
				}
			case err != nil:
				close(lost)
				return
			}
		}
	}()
	return lost, nil
}

// LivenessHeld implements store.Liveness by reading pg_locks, without
// touching the locks: a bigint advisory key k shows as classid = high 32
// bits, objid = low 32 bits, objsubid = 1, in this database.
func (s *Store) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.lease.Query(ctx, `
		SELECT k.key, EXISTS (
			SELECT 1 FROM pg_locks AS l
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND l.classid::bigint = (k.key >> 32) & 4294967295
			  AND l.objid::bigint = k.key & 4294967295)
		FROM unnest($1::bigint[]) AS k (key)`, keys)
	if err != nil {
		return nil, fmt.Errorf("read liveness locks: %w", err)
	}
	var key int64
	var held bool
	_, err = pgx.ForEachRow(rows, []any{&key, &held}, func() error {
		out[key] = held
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read liveness locks: %w", err)
	}
	return out, nil
}
