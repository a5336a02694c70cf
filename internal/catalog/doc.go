// Package catalog is a process's copy of the deployed activity definitions,
// and the check of events against them.
//
// Every event that reaches the store through the bus, the HTTP API or a
// direct stream is checked against the definition of its activity
// (definition.Activity.Validate): an item that is not defined, or a value
// that does not fit its type, refuses the event with an *event.Error naming
// "data.<item>" and the rule. The bus quarantines such an event as a failed
// event; `bam failed retry` applies it once a definition that accepts it is
// deployed.
//
// # Staying current without asking the store for every event
//
// A Catalog holds the definitions of one deployment version. Refresh asks
// the store for its current version (one cheap query) at most every
// MaxAge, and reloads the definitions only when the version moved. So a
// deployment reaches every node within MaxAge (default 1 s). An event that
// fails the check may have met a copy older than the deployment that makes
// it valid: before refusing it, Validate refreshes at once (at most every
// MinRecheck, so a stream of bad events does not turn into a stream of
// queries) and checks again.
//
// # Activities without a definition
//
// By default an event of an activity that has no deployed definition is
// accepted as it is, untyped: bam keeps its items in the instance like any
// other, and it has no typed views. With Strict, such an event is refused
// ("activity X is not deployed"), which is what a store whose activities
// are all declared wants: a misspelt activity name is then an error instead
// of a new activity. An activity name that differs from a deployed one only
// in case is refused in both modes, naming the deployed spelling.
package catalog
