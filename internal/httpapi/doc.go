// Package httpapi is bam's HTTP API, served by `bam serve --http ADDR`:
// applications post batches of events to a buffer source, analysts read
// activity instances, and operators do what the command line's status,
// activity, definition, failed and source commands do, through the same
// code (package ops). docs/HTTP.md is the guide and docs/openapi.yaml the
// contract; a test keeps the routes and that file in step.
//
//	POST /v1/sources/{source}/events                 ingest a batch (JSON or NDJSON)
//	GET  /v1/activities/{activity}/instances/{id}    one instance, with its timeline and links
//	GET  /v1/activities/{activity}/instances         instances, by id, paged
//	GET  /metrics                                    the node's Prometheus metrics (Config.Metrics)
//	GET  /livez, /readyz, /healthz                   the node's liveness and readiness (package health)
//
//	GET  /v1/activities, /v1/activities/{activity}   activities.go: definitions, counts
//	GET  /v1/definitions, /v1/deployments            the file (YAML), the history
//	GET  /v1/nodes, /v1/sessions                     pool.go: nodes, sessions, backlogs
//	GET  /v1/failed, /v1/failed/{id}                 failed.go: list (filtered, paged), show
//	POST /v1/failed/{id}/retry, DELETE /v1/failed/{id}, POST /v1/failed:retry, /v1/failed:discard
//	GET  /v1/sources, /v1/sources/{source}           sources.go: with their backlog
//	POST /v1/sources, /v1/sources/{source}/{enable,disable,pause,resume}
//
// What can grow large is paged, and counted up to a bound
// (Config.CountBound) that the answer says it reached, so that a request
// never loads the store. The bulk operations take up at most
// Config.MaxBulk failed events per request.
//
// An ingest request is answered once its valid events are durable in the
// store's buffer: they are appended in one store transaction, and the
// response says how many were accepted and why each other one was
// rejected. With an Idempotency-Key header, that transaction also records
// the key and the response (store.AppendBufferIdempotent), so a client that
// retries after a timeout gets the same answer and doubles nothing.
//
// With Config.Metrics, Handler counts every request by the ServeMux
// pattern that matched it (never the raw path, which would make a series
// per instance id) and its status code.
//
// There is no authentication yet, and the operations that change the store
// are on the same listener: Listen refuses an address that is not loopback
// unless Config.AllowRemote is set. Every error body is JSON,
// {"error": "..."}, and never holds a store URL or password; a pg-outbox
// source's DSN is never shown in any answer.
package httpapi
