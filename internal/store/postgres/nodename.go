package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Connections that write for a node carry its id in their application_name
// ("bam node 3f2a…" for batches, "bam-lease node 3f2a…" for its lease
// statements), so that a peer taking over an expired lease can tell the
// backends of that lease's owner among those that block it, and end only
// those (Claim). The name is set when a connection is taken from its pool
// for a node's statement (the node travels in the context: forNode), so a
// Store shared by several nodes (tests) stays right.

// nodeKey is the context key of the node a statement runs for.
type nodeKey struct{}

// forNode returns ctx marked with the node the statements run for.
func forNode(ctx context.Context, node string) context.Context {
	if node == "" {
		return ctx
	}
	return context.WithValue(ctx, nodeKey{}, node)
}

// nodeSuffix is what ends the application_name of a node's connections.
func nodeSuffix(node string) string { return " node " + node }

// maxAppName is PostgreSQL's limit on application_name (NAMEDATALEN − 1).
const maxAppName = 63

// appNameFor is base followed by the node's suffix, base shortened when
// the whole would be cut by the server (the suffix must survive).
func appNameFor(base, node string) string {
	suffix := nodeSuffix(node)
	if room := maxAppName - len(suffix); len(base) > room {
		base = base[:max(room, 0)]
	}
	return base + suffix
}

// nameForNode returns a PrepareConn hook that names the connection after
// the node of the context, when it is not named so already. It costs a
// round trip only when the connection last ran for another node, or none.
// application_name is reported by the server (ParameterStatus), so pgx
// knows the current name without asking.
func nameForNode(base string) func(context.Context, *pgx.Conn) (bool, error) {
	return func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		node, _ := ctx.Value(nodeKey{}).(string)
		if node == "" {
			return true, nil
		}
		want := appNameFor(base, node)
		if conn.PgConn().ParameterStatus("application_name") == want {
			return true, nil
		}
		if _, err := conn.Exec(ctx, `SELECT set_config('application_name', $1, false)`, want); err != nil {
			// The connection's state is unknown: drop it.
			return false, fmt.Errorf("name connection for node %s: %w", node, err)
		}
		return true, nil
	}
}
