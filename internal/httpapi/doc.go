// Package httpapi is bam's HTTP API, served by `bam serve --http ADDR`:
// applications post batches of events to a buffer source, and analysts
// read activity instances. docs/HTTP.md is the guide and docs/openapi.yaml
// the contract; a test keeps the routes and that file in step.
//
//	POST /v1/sources/{source}/events                 ingest a batch (JSON or NDJSON)
//	GET  /v1/activities/{activity}/instances/{id}    one instance
//	GET  /v1/activities/{activity}/instances         instances, by id, paged
//	GET  /healthz                                    200 when the store answers
//
// An ingest request is answered once its valid events are durable in the
// store's buffer: they are appended in one store transaction, and the
// response says how many were accepted and why each other one was
// rejected. With an Idempotency-Key header, that transaction also records
// the key and the response (store.AppendBufferIdempotent), so a client that
// retries after a timeout gets the same answer and doubles nothing.
//
// There is no authentication yet: Listen refuses an address that is not
// loopback unless Config.AllowRemote is set. Every error body is JSON,
// {"error": "..."}, and never holds a store URL or password.
package httpapi
