package storeurl

import (
	"strings"
	"testing"
)

func TestRedactHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"postgres://app:s3cret@db:5432/app",
		"postgresql://app:s3cret@db/app?sslmode=disable",
		"postgres://app@db/app?password=s3cret",
		"host=db user=app password=s3cret dbname=app",
		"host=db password='s3 cret' dbname=app",
		"host=db PASSWORD = s3cret",
	} {
		if got := Redact(raw); strings.Contains(got, "s3") {
			t.Errorf("Redact(%q) = %q: the password shows", raw, got)
		}
	}
	if got := Redact("sqlite:bam-data/bam.db"); got != "sqlite:bam-data/bam.db" {
		t.Errorf("Redact of a sqlite URL = %q", got)
	}
	if got := Redact("postgres://app@db/app"); got != "postgres://app@db/app" {
		t.Errorf("Redact of a URL without password = %q", got)
	}
}
