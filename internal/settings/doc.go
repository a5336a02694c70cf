// Package settings is the registry of the pool-wide settings of bam serve:
// the ones that must agree on every node of a pool (a node with another
// lease TTL or another largest event size than its peers is a latent bug),
// kept once in the store (store.PoolSettings) by bam config set, and read
// by every node at its start and while it runs.
//
// # One registry
//
// Every pool-wide setting is one entry of All: its name (the name of
// bam serve's flag for it, and of the key of the config file), its type
// and unit, its default (the flag's), the field of Values it sets, and
// whether a running node applies a change at once (Live) or at its next
// start. A value is checked against the whole configuration it makes
// (Values.Validate, which asks pool.Config.Validate for the lease rules),
// and a refusal names the setting and the rule in the operator's words:
// "safety-margin 3s must be less than lease TTL − renew interval (2s)".
//
// What stays per node is not here: the node's name, its listen addresses
// (--http, --http-allow-remote, --http-max-body), its log format and
// level, its store URL, its stop timeout, its mail server and the alert
// link. A flag, an environment variable or the config file gives those.
//
// # Precedence
//
// For each setting a node uses the first that gives it a value:
//
//	flag  >  environment (BAM_<FLAG>)  >  config file (--config)  >  pool setting  >  default
//
// Resolve computes that from what the node's command line gave (the
// origins of its flags) and the stored pool settings, and says where each
// value came from (Effective): bam config show --effective prints it, and
// bam serve logs once at start each pool setting its own flag, variable
// or file overrides.
//
// # Live changes
//
// A running node reads the pool settings again on a settings notice (a
// set or unset sends one: store.TopicSettings) and every Follower.Every
// (bam serve: ten balance intervals, 5 s by default) as a fallback for a
// missed notice: one statement per node every few seconds, 0.1 per balance
// interval, O(1) as DESIGN.md's "Scale" asks. Follower computes the new Values,
// keeps the node's own overrides, checks them, and hands the changed Live
// settings to its Apply function, logging each change once with the old
// and new value. A change of a setting that is not Live is logged as
// waiting for the node's next start, and a change of one the node gives
// itself as not applied (the node keeps its own).
//
// Why the lease settings (lease-ttl, renew-interval, safety-margin,
// liveness-confirm) are not Live: a lease's local deadline must use the
// TTL the store used for that very claim or renewal, and the nodes judge
// each other's heartbeats by their own TTL; while one node renews with a
// new TTL and its peers still judge it by the old one, a peer could take a
// lease for expired that its owner still trusts. A restart of each node
// (a rolling one) applies them. The session batch settings apply to
// sessions started after a restart, for the same simplicity.
package settings
