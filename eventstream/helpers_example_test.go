package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// exampleStore makes a SQLite store in a temporary directory with a buffer
// source "orders" of 2 partitions, as `bam migrate` and `bam source add
// orders --kind buffer --partitions 2` would, and returns its URL and what
// removes it.
func exampleStore() (url string, cleanup func()) {
	dir, err := os.MkdirTemp("", "eventstream-example-")
	if err != nil {
		log.Fatal(err)
	}
	url = "sqlite:" + filepath.Join(dir, "bam.db")
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
		log.Fatal(err)
	}
	return url, func() { os.RemoveAll(dir) }
}

// exampleStream opens a buffered stream into the source "orders" of a
// store from exampleStore, and returns it with what removes the store.
func exampleStream(ctx context.Context) (*eventstream.Buffered, func()) {
	storeURL, cleanup := exampleStore()
	stream, err := eventstream.OpenBuffered(ctx, sqlitestream.New(), storeURL, "orders", eventstream.BufferedOptions{})
	if err != nil {
		log.Fatal(err)
	}
	return stream, cleanup
}

// applied runs a node on the store until it applied every buffered event,
// and returns the instance as describe does.
func applied(url, activity, id string) string {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	sessions, err := st.Sessions(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var written int64
	for _, s := range sessions {
		n, err := st.BufferBacklog(ctx, s.SessionID, store.Position{})
		if err != nil {
			log.Fatal(err)
		}
		written += n
	}
	cfg := pool.DefaultConfig()
	cfg.Name, cfg.Session.PollInterval = "example", 100*time.Millisecond
	node, err := pool.NewNode(st, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}()
	// An example has no *testing.T: it polls as an application would.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sessions, err := st.Sessions(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var done int64
		for _, s := range sessions {
			done += s.Applied + s.Failed
		}
		if done >= written {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("the node applied %d of %d events in 20s", done, written)
		}
	}
	return describe(ctx, st, activity, id)
}

// stored returns an instance of the store at url as describe does.
func stored(url, activity, id string) string {
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	return describe(ctx, st, activity, id)
}

// describe returns an instance as one line, data sorted by name.
func describe(ctx context.Context, st store.Store, activity, id string) string {
	in, err := st.Instance(ctx, event.Key{Activity: activity, Instance: id})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("%s %s: none", activity, id)
	}
	if err != nil {
		log.Fatal(err)
	}
	names := make([]string, 0, len(in.Data))
	for name := range in.Data {
		names = append(names, name)
	}
	slices.Sort(names)
	var data []string
	for _, name := range names {
		data = append(data, name+"="+string(in.Data[name]))
	}
	return fmt.Sprintf("%s %s %s, %d events: %s", activity, id, in.State, in.Events, strings.Join(data, " "))
}

// exampleDeploy deploys a definitions file to the store at url, as bam
// deploy would.
func exampleDeploy(url, yaml string) {
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	file, err := definition.Parse([]byte(yaml))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := st.Deploy(ctx, store.DeployRequest{File: file, Text: yaml, By: "example"}); err != nil {
		log.Fatal(err)
	}
}
