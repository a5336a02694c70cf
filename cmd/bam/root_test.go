package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogDurations: JSON logs write durations as seconds, a float, at any
// depth of groups; text logs keep Go's human form.
func TestLogDurations(t *testing.T) {
	log := func(format string) string {
		var out bytes.Buffer
		a := &app{stderr: &out, logFormat: format, logLevel: "info"}
		if err := a.setUp(); err != nil {
			t.Fatal(err)
		}
		a.log.With("lease_ttl", 3*time.Second).Info("batch applied", "took", 125*time.Millisecond, "events", 7,
			slog.Group("renew", "latency", 1500*time.Microsecond))
		return out.String()
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(log("json")), &got); err != nil {
		t.Fatal(err)
	}
	renew, _ := got["renew"].(map[string]any)
	if got["took"] != 0.125 || got["lease_ttl"] != 3.0 || got["events"] != 7.0 || renew["latency"] != 0.0015 {
		t.Errorf("json: %v", got)
	}
	if text := log("text"); !strings.Contains(text, "took=125ms") || !strings.Contains(text, "lease_ttl=3s") || !strings.Contains(text, "renew.latency=1.5ms") {
		t.Errorf("text: %s", text)
	}
}
