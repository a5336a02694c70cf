package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	b := newBench(t)
	r := b.ok("--version")
	if !strings.HasPrefix(r.stdout, "bam ") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("bam --version printed %q", r.stdout)
	}
	if ua := userAgent(); !strings.HasPrefix(ua, "bam/") {
		t.Errorf("user agent %q", ua)
	}
}
