// Package testlog records what a component logs, so that a test can count
// the lines that say what happened ("node died", "liveness lock taken
// again") instead of guessing from timings. The lines also go to the
// test's own log handler.
package testlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// Lines holds the messages logged through a Capture's logger, with their
// attributes. It is safe for concurrent use.
type Lines struct {
	mu    sync.Mutex
	lines []line
	next  slog.Handler
}

type line struct {
	msg   string
	attrs map[string]string
}

// Capture returns a logger whose lines are recorded in the returned Lines
// and passed on to next (the test's own handler, which may discard them).
func Capture(next slog.Handler) (*Lines, *slog.Logger) {
	l := &Lines{next: next}
	return l, slog.New(&handler{lines: l})
}

// Count returns how many lines have msg and, when why is not empty, that
// "why" attribute.
func (l *Lines) Count(msg, why string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ln := range l.lines {
		if ln.msg == msg && (why == "" || ln.attrs["why"] == why) {
			n++
		}
	}
	return n
}

// Messages returns every line's message, in order.
func (l *Lines) Messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.lines))
	for i, ln := range l.lines {
		out[i] = ln.msg
	}
	return out
}

// Dump logs every line to t, for a failure's diagnosis.
func (l *Lines) Dump(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		t.Logf("  %s %v", ln.msg, ln.attrs)
	}
}

type handler struct {
	lines *Lines
	attrs []slog.Attr
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	ln := line{msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		ln.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		ln.attrs[a.Key] = a.Value.String()
		return true
	})
	h.lines.mu.Lock()
	h.lines.lines = append(h.lines.lines, ln)
	h.lines.mu.Unlock()
	return h.lines.next.WithAttrs(h.attrs).Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{lines: h.lines, attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h *handler) WithGroup(string) slog.Handler { return h }
