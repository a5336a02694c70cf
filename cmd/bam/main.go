// Command bam is the Business Activity Monitoring event bus: it moves the
// business events that applications write to sources into the activity
// store, on a pool of nodes that share the work, fail over and deliver each
// event exactly once.
//
// Run `bam demo` to see it work, `bam --help` for the commands.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}
