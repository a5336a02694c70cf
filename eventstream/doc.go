// Package eventstream is what applications import to record business
// activities in bam: begin an activity instance, update it with milestones
// and data, end it, continue it elsewhere under a continuation token, relate
// it to other instances and add references to documents. It is the Go
// counterpart of BizTalk's BAM event streams.
//
// Every stream implements Writer, one method per kind of event:
//
//	BeginActivity        begin an instance
//	UpdateActivity       set milestones and data
//	EndActivity          end the instance's own part
//	EnableContinuation   let another component, which knows only a token, continue the instance
//	UpdateContinuation   set milestones and data under a token
//	EndContinuation      end a continuation (the instance completes once it and all its continuations ended)
//	EnableNestedContinuation  open a further continuation from a continuation
//	AddRelatedActivity   link two instances (shown from both)
//	AddReference         add a typed link to something outside bam (a document's URL, a message id)
//
// The streams differ in where the events go and what a returned nil
// guarantees:
//
//   - Buffered (OpenBuffered) holds events in memory and writes them to a
//     buffer source of the activity store in one transaction when
//     FlushThreshold events are held, or when Flush is called. Events are
//     durable once Flush returns nil. Closing a stream that still holds
//     events is an error (ErrUnflushed), never a silent loss.
//   - Outbox (NewOutbox, then Outbox.SQL, or pgstream.OutboxTx for pgx, on
//     a transaction) writes each event as a row of a pg-outbox table inside
//     the application's own PostgreSQL transaction: the events are
//     committed if and only if the business transaction is.
//   - Direct (OpenDirect) writes each event synchronously into the store's
//     instances, in a store transaction of its own: the instance shows the
//     event when the method returns. Direct.SQL (and pgstream.DirectTx,
//     for a pgx.Tx) write inside the caller's transaction on the store's
//     database instead, so that the events are applied if and only if it
//     commits.
//
// # Drivers
//
// The streams that talk to the store (buffered and direct) open it with a
// Driver, one package per kind of store: pgstream for PostgreSQL (on pgx),
// sqlitestream for SQLite (on modernc.org/sqlite).
//
//	stream, err := eventstream.OpenBuffered(ctx, pgstream.New(), "postgres://bam@db/bam", "orders", eventstream.BufferedOptions{})
//
// This package imports neither, so a program links only the database
// clients of the drivers it names: one that writes to a PostgreSQL store
// carries no SQLite, and one that writes to a SQLite store no PostgreSQL
// client. The outbox needs no driver: it writes through the application's
// own connection.
//
// # Events
//
// Every method checks its event before anything is written, and an event
// that bam would refuse is returned as an *EventError naming the field at
// fault ("activity", "data.Amount", "reference.type"); errors.Is(err,
// ErrInvalidEvent) holds for all of them. An event's time is when the
// method is called, unless the At option gives it:
//
//	w.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", eventstream.Data{"Approved": approvedAt},
//		eventstream.At(approvedAt))
//
// Data values may be Go strings, integers, floats, booleans, time.Time
// (written as an RFC 3339 string, the form of a milestone), json.Number,
// nil (which sets nothing), types whose underlying type is one of those, and
// pointers to any of them (a nil pointer is nil). Write a decimal as a string
// or a json.Number ("1200.50") to keep it exact. Anything else is an
// *EventError naming the item.
//
// When two events set the same item, the one with the later event time wins,
// whatever order they reach the store in (see docs/SDK.md): give events
// explicit times when several components write the same instance.
package eventstream
