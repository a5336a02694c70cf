// Package pooltest holds the tests of pool nodes that need a real store:
// what only a real database shows (a PostgreSQL server restarted under the
// nodes, a liveness lock's connection ended by the server, a backend
// stalled mid-batch holding a session's row) and the pg-outbox readers,
// which read a real application database. They run nodes in this process,
// on SQLite and PostgreSQL.
//
// Everything else about nodes is tested in package pool itself, on the
// in-memory store and synctest's fake clock, in milliseconds; the tests of
// real `bam serve` processes (SIGKILL, SIGSTOP) are in test/e2e. The
// package has no code: only tests.
package pooltest
