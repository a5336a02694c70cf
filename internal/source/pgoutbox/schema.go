package pgoutbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/source/pgoutbox/outboxtable"
)

// DefaultTable is the outbox table used when the operator names none.
const DefaultTable = outboxtable.Default

// ReadersTable is the table, in an outbox's schema, that says which bam
// store reads each outbox there (Reader.Claim).
const ReadersTable = "bam_outbox_readers"

// maxIdentLen is PostgreSQL's identifier and NOTIFY channel limit in bytes.
const maxIdentLen = outboxtable.MaxIdentLen

// ErrInvalidTable is wrapped by the errors of ParseTable, Install and Open
// when the table name cannot name an outbox table.
var ErrInvalidTable = outboxtable.ErrInvalid

// ParseTable turns an operator's table name into an identifier: "" is
// DefaultTable, "name" is a table found through the search_path, and
// "schema.name" is a table in that schema. Each part is taken literally
// (case and spaces kept, quoted by pgx.Identifier when it reaches SQL), so
// quotes are refused rather than guessed at: write App.Outbox, not
// "App"."Outbox". The rules are outboxtable.Parse's, which the SDK's
// outbox writer follows too.
func ParseTable(table string) (pgx.Identifier, error) {
	parts, err := outboxtable.Parse(table)
	if err != nil {
		return nil, err
	}
	return pgx.Identifier(parts), nil
}

// installBody is the DDL of an outbox, without transaction control so that
// Install can run it in a transaction (or a savepoint) of its own. Every
// statement is idempotent, so installing twice, or upgrading an install, is
// safe. The advisory lock serializes concurrent installs, which would
// otherwise race on CREATE ... IF NOT EXISTS.
//
// Why each piece is there:
//   - xid is the writing transaction's id, taken by default so applications
//     never set it: the reader reads by (xid, id) below the oldest running
//     transaction, which is what keeps a late commit from being skipped.
//   - event is text, not jsonb, so that a malformed event never fails the
//     application's business transaction; bam quarantines it instead.
//   - id is the primary key so that the DELETEs of trimming also work when
//     the application's database publishes every table by logical
//     replication (which needs a replica identity).
//   - bam_outbox_readers, beside the table, says which bam store reads each
//     outbox of the schema (Reader.Claim): a second store's pool pointed at
//     the same table is refused, instead of both applying every event.
//   - The trigger is per statement, and NOTIFY is delivered on commit only
//     (and never for a rolled-back transaction), so nodes wake once per
//     committed write. The channel is derived from the table's real schema
//     and name, which the reader resolves the same way, so "bam_outbox" and
//     "public.bam_outbox" wake the same readers. Names too long for a channel
//     fall back to the table's oid, so pg_notify can never fail the
//     application's transaction.
//
// %[1]s is the table, %[2]s its index, %[3]s the trigger function, %[4]s
// the readers table, all quoted.
const installBody = `SELECT pg_advisory_xact_lock(hashtextextended('bam install-outbox', 0));
CREATE TABLE IF NOT EXISTS %[1]s (
    id          bigserial   PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    instance_id text        NOT NULL,
    event       text        NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (xid, id);
CREATE OR REPLACE FUNCTION %[3]s() RETURNS trigger LANGUAGE plpgsql AS $bam$
DECLARE
    channel text := 'bam:' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF octet_length(channel) > 63 THEN
        channel := 'bam:oid:' || TG_RELID::bigint;
    END IF;
    PERFORM pg_notify(channel, '');
    RETURN NULL;
END
$bam$;
CREATE OR REPLACE TRIGGER bam_outbox_notify
    AFTER INSERT ON %[1]s FOR EACH STATEMENT EXECUTE FUNCTION %[3]s();
CREATE TABLE IF NOT EXISTS %[4]s (
    outbox     text        PRIMARY KEY,
    store_id   text        NOT NULL,
    source     text        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
`

// installDDL returns installBody for a parsed table. The index and the
// trigger function live in the table's schema (or, for an unqualified
// table, wherever the search_path creates it, which is where the table
// goes too).
func installDDL(table pgx.Identifier) string {
	name := table[len(table)-1]
	index := pgx.Identifier{name + "_xid_id_idx"}
	fn := append(pgx.Identifier{}, table[:len(table)-1]...)
	fn = append(fn, "bam_outbox_notify")
	readers := append(pgx.Identifier{}, table[:len(table)-1]...)
	readers = append(readers, ReadersTable)
	return fmt.Sprintf(installBody, table.Sanitize(), index.Sanitize(), fn.Sanitize(), readers.Sanitize())
}

// InstallSQL returns the DDL that creates the outbox table named table (see
// ParseTable), its (xid, id) index and its NOTIFY trigger, in one
// transaction, for an operator to review or run with psql. It is
// idempotent. It needs PostgreSQL 14 or newer (CREATE OR REPLACE TRIGGER),
// and the schema of a qualified name must exist.
//
// It returns SQL even for a name ParseTable refuses, since it has no error
// to return: then the SQL raises that error when run, and does nothing else.
func InstallSQL(table string) string {
	id, err := ParseTable(table)
	if err != nil {
		// Only the fixed reason goes into the SQL: the name itself could
		// hold anything, and quoting it into a string literal is not worth
		// the risk for a message.
		return "DO $bam$ BEGIN RAISE EXCEPTION 'bam: " + ErrInvalidTable.Error() +
			": use name or schema.name, without quotes, each part at most 63 bytes'; END $bam$;\n"
	}
	return "BEGIN;\n" + installDDL(id) + "COMMIT;\n"
}

// Beginner starts a transaction: *pgx.Conn and *pgxpool.Pool are
// Beginners, and so is a pgx.Tx (Install then runs in a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Install runs InstallSQL's DDL on db in one transaction: either the whole
// outbox is installed or nothing changes. `bam source install-outbox`
// calls it.
func Install(ctx context.Context, db Beginner, table string) error {
	id, err := ParseTable(table)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// No arguments: pgx sends it with the simple protocol, which runs
		// several statements.
		_, err := tx.Exec(ctx, installDDL(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("install outbox table %s: %w", id.Sanitize(), err)
	}
	return nil
}
