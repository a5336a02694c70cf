// Package ops holds what an operator does to a store, shared by the
// command line (cmd/bam) and the HTTP API (internal/httpapi), so that both
// make the same checks and say the same things in the same JSON:
//
//   - activities: the deployed definitions as JSON, counts of instances
//     by state, one activity found by name in any case, the definitions
//     file exported (activities.go);
//   - the pool: each session's backlog, from the store's buffer or a
//     pg-outbox database, counted up to a bound so that a session far
//     behind never loads the store, and why a pg-outbox session is held
//     back (backlog.go);
//   - failed events: selected by filters, retried with the checks a node
//     makes (size, the deployed definition), discarded, one or many
//     (failed.go);
//   - sources: a new source checked before it is added (its name, kind,
//     partitions, a pg-outbox DSN that must never be shown), and a
//     source's JSON with its DSN's password masked (sources.go).
//
// Errors a caller can branch on wrap the store's sentinels
// (store.ErrNotFound) or are *InvalidError (the request is wrong as
// written: a usage error on the command line, 400 over HTTP).
package ops
