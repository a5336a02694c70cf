package main

import (
	"net"
	"testing"
)

// TestServeMetricsFlags checks that --metrics refuses what --http refuses:
// an address beyond this machine without --metrics-allow-remote, one that
// is not HOST:PORT, one in use; and --metrics-allow-remote alone.
func TestServeMetricsFlags(t *testing.T) {
	b := migrated(t)
	b.fails(exitUsage, "", []string{"serve", "--metrics", "0.0.0.0:9480"}, "--metrics 0.0.0.0:9480", "loopback", "--metrics-allow-remote")
	b.fails(exitUsage, "", []string{"serve", "--metrics", ":9480"}, "loopback")
	b.fails(exitUsage, "", []string{"serve", "--metrics", "9480"}, "--metrics", "HOST:PORT")
	b.fails(exitUsage, "", []string{"serve", "--metrics-allow-remote"}, "--metrics-allow-remote needs --metrics")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	b.fails(exitError, "", []string{"serve", "--metrics", taken.Addr().String()}, "not starting the node", "address already in use")
}
