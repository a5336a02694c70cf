package store

import "testing"

// TestWithRecordedKeyReadsTheServerBack: the drivers keep an identity's
// server only in its key; reading it back gives the identity recorded,
// whatever its server and table hold.
func TestWithRecordedKeyReadsTheServerBack(t *testing.T) {
	for _, o := range []OutboxIdentity{
		{Server: "db.example.com:5432", DatabaseOID: 16384, Database: "shop", Table: "public.bam_outbox"},
		{Server: "/var/run/postgresql:5433", DatabaseOID: 7, Database: "shop", Table: "sales/eu.order outbox"},
		{Server: "[::1]:5432", DatabaseOID: 16384, Database: "shop", Table: "public.16384"},
		{SystemID: "7302", DatabaseOID: 16384, Database: "shop", Table: "public.bam_outbox"},
		{},
	} {
		read := o
		read.Server = "" // what a driver scans from the other columns
		if got := read.WithRecordedKey(o.Key()); got != o {
			t.Errorf("WithRecordedKey(%q) = %+v, want %+v", o.Key(), got, o)
		}
	}
	// A key of another identity gives no server rather than a wrong one.
	o := OutboxIdentity{DatabaseOID: 16384, Database: "shop", Table: "public.bam_outbox"}
	if got := o.WithRecordedKey("addr:db:5432/99/public.bam_outbox"); got.Server != "" {
		t.Errorf("the server of another database's key: %q", got.Server)
	}
}
