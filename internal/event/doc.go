// Package event defines a business event, its JSON form, how it is checked,
// which partition of a source it belongs to, and how events of one activity
// instance merge into that instance's state.
//
// # The JSON form (stable)
//
//	{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update",
//	 "time": "2026-11-25T10:02:00Z", "data": {"Approved": "2026-11-25T10:02:00Z", "Amount": 1200}}
//
// time is optional: a writer that omits it gets the time the event was
// written. Unknown fields are refused, so that a typo is an error and not
// silently dropped data. The kinds:
//
//	begin, update, end     the instance's life, with data: item names to scalar
//	                       values (string, number, boolean or null)
//	enable-continuation    {"instance": "PO-1042", "token": "ship-PO-1042"}: another part of
//	                       the process, which does not know the instance id, will continue
//	                       the instance under the token
//	relate                 {"instance": "PO-1042", "related": {"activity": "Invoice", "instance": "INV-7"}}:
//	                       links two instances, shown from both
//	reference              {"instance": "PO-1042", "reference": {"type": "message", "name": "order",
//	                       "value": "<message id>", "data": "<optional long text>"}}
//
// An event names its instance with "instance", or, for the events of a
// continuation, with "continuation": the token, in place of the instance.
// Under a token an event may be update, end or enable-continuation (a
// continuation may open further continuations); a continuation has no begin
// (its instance began). relate and reference events name an instance.
// data belongs to begin, update and end only; token, related and reference
// only to their kind. Limits: ids and tokens MaxInstanceLen bytes of text
// without control characters; a reference's type is a name (letters,
// digits, underscores) of at most MaxReferenceType bytes, its name at most
// MaxReferenceName and its value at most MaxReferenceValue bytes of text,
// its data at most MaxReferenceData bytes of text (which also needs an
// event size limit above it: the default limit, DefaultMaxSize, allows it).
// Every store must hold every value that passes, as it was sent (but a time
// in data, which Coalesce gives its stored form: StoredTime), so text
// anywhere in an event must be valid UTF-8 without NUL (PostgreSQL's text
// and jsonb refuse both; a JSON decoder would silently replace bad bytes),
// and a number must be at most MaxNumber in magnitude (beyond it SQLite
// and float readers see ±Inf; PostgreSQL's numeric refuses 1e200000) with
// at most MaxNumberScale digits after the point (numeric's limit; 1e-20000
// has 20000). A store that still refuses a value is the session's to
// handle (package bus): it quarantines the event and goes on.
// Conventional reference types: "message" (a message id), "document" or
// "url" (where a document is), "instance" (value "Activity/instance-id").
//
// The partition of an event is the hash of its segment: the instance, or
// the token of a continuation. The events of one segment stay in order.
//
// # Merge rules (arrival order does not matter)
//
// Events of one instance can reach the store in another order than they
// happened (two outbox transactions commit in the other order, an update is
// written before its begin, events come through different sources). The
// rules below commute, so the final state is the same whatever the order of
// arrival:
//
//   - begin time is the earliest begin seen; end time is the latest end seen;
//   - an instance is pending until its begin arrives (its updates and end are
//     kept and merged meanwhile), active once begun, completed once it has
//     a begin, an end, and every continuation it opened (directly, or through
//     a continuation of its own) has ended;
//   - each data item keeps the non-null value with the latest event time;
//     null never erases a value;
//   - last modified is the latest event time seen;
//   - the events of a continuation merge into the instance that enabled its
//     token by these same rules, whether they arrive before the
//     enable-continuation or after it: until then the store keeps them
//     aside, under the token, and folds them in when the link arrives;
//   - relations are a set: relating A to B twice, or B to A, is one link,
//     shown from both instances;
//   - references are a set keyed by (type, name, value); of the same
//     reference sent twice, the data of the later event time is kept.
//
// What does not commute, and what wins:
//
//   - two values of one item with the same event time: the one applied last
//     wins (give events distinct times when that matters);
//   - two references (type, name, value) with the same event time and other
//     data: the one applied last wins;
//   - one token enabled from two instances: a token names one continuation.
//     The first enable applied keeps it; the store quarantines a later one
//     that names another instance as a failed event, with its reason.
package event
