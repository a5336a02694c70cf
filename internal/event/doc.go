// Package event defines a business event, its JSON form, how it is checked,
// which partition of a source it belongs to, and how events of one activity
// instance merge into that instance's state.
//
// # The JSON form (stable)
//
//	{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update",
//	 "time": "2026-11-25T10:02:00Z", "data": {"Approved": "2026-11-25T10:02:00Z", "Amount": 1200}}
//
// kind is begin, update or end. time is optional: a writer that omits it gets
// the time the event was written. data maps item names to scalar values
// (string, number, boolean or null). Unknown fields are refused, so that a
// typo is an error and not silently dropped data.
//
// # Merge rules (arrival order does not matter)
//
// Events of one instance can reach the store in another order than they
// happened (two outbox transactions commit in the other order, an update is
// written before its begin). The rules below commute, so the final state is
// the same whatever the order of arrival:
//
//   - begin time is the earliest begin seen; end time is the latest end seen;
//   - an instance is pending until its begin arrives (its updates and end are
//     kept and merged meanwhile), active once begun, completed once it has
//     both a begin and an end;
//   - each data item keeps the non-null value with the latest event time;
//     null never erases a value; between two values of the same item with the
//     same event time, the one applied last wins (this is the only case where
//     arrival order shows);
//   - last modified is the latest event time seen.
package event
