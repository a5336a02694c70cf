package store

import "context"

// Searcher is an optional extra of a driver: it runs a read-only statement
// that package search compiled from a checked filter over an activity's
// views (values as parameters, identifiers from the deployed definition)
// and returns every row's values as the database client hands them over.
// The drivers stay thin: what the columns mean, the paging and the cursor
// are package search's.
type Searcher interface {
	// Driver is "postgres" or "sqlite": the SQL dialect of the statements.
	Driver() string
	SearchRows(ctx context.Context, sql string, args []any) ([][]any, error)
}
