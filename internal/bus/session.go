package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/planted"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// ErrLost means the session is no longer this node's to apply.
var ErrLost = errors.New("session lost")

// Config tunes a session. Start from DefaultConfig and change what you
// need: every field must be set (Validate), so that a zero typed on a
// command line is refused instead of quietly meaning a default.
type Config struct {
	BatchSize int // records per batch when caught up; default 1000
	// MaxBatchSize is the batch while a backlog drains: a batch that comes
	// back full (a backlog) makes the next one this large, until a short
	// one (caught up) brings it back to BatchSize. Fewer, larger
	// transactions let more events of one instance coalesce into one
	// write. Default 16000; a value below BatchSize keeps batches at
	// BatchSize.
	MaxBatchSize int
	PollInterval time.Duration // idle read without a notification; default 1s
	HeldRetry    time.Duration // re-read when records are held behind an open transaction; default 10ms, doubling while nothing moves, up to PollInterval
	MaxBackoff   time.Duration // cap of the retry delay after an error; default 5s
	MaxEventSize int           // bytes; default event.DefaultMaxSize
	// CurrentMaxEventSize, when set, is read at each batch in place of
	// MaxEventSize: a running node's pool-wide setting, changed live
	// (package settings). It returns a positive size.
	CurrentMaxEventSize func() int
	TrimEvery           int // trim the source at least every this many full batches; default 10
	// BatchWait lets a partial batch fill: after a read that returns fewer
	// records than it asked for (BatchSize, or MaxBatchSize at the start
	// and while a backlog drains), wait this long and read again before
	// applying. Throughput for latency; default 0 (apply at once).
	BatchWait time.Duration
	// Validator, when set, checks each decoded event against the deployed
	// activity definitions (a catalog.Catalog).
	Validator Validator
	// Metrics, when set, records each session's batches (metrics.go).
	Metrics Metrics
}

// Validator checks a decoded event. An *event.Error means the event is at
// fault: it is quarantined with that reason. Any other error means the
// check could not be made (the store is unreachable): the batch fails and
// is retried.
type Validator interface {
	Validate(ctx context.Context, ev event.Event) error
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		BatchSize:    1000,
		MaxBatchSize: 16000,
		PollInterval: time.Second,
		HeldRetry:    10 * time.Millisecond,
		MaxBackoff:   5 * time.Second,
		MaxEventSize: event.DefaultMaxSize,
		TrimEvery:    10,
	}
}

// A ConfigError names the setting of a Config that is out of range, by
// its field name (a node's names its session's as "Session.BatchSize"),
// so that a command can name its own flag for it.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

var errNotPositive = errors.New("must be positive")

// Validate reports the first setting out of range, as a *ConfigError.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"BatchSize", c.BatchSize > 0},
		{"MaxBatchSize", c.MaxBatchSize > 0},
		{"PollInterval", c.PollInterval > 0},
		{"HeldRetry", c.HeldRetry > 0},
		{"MaxBackoff", c.MaxBackoff > 0},
		{"MaxEventSize", c.MaxEventSize > 0},
		{"TrimEvery", c.TrimEvery > 0},
	} {
		if !f.ok {
			return &ConfigError{Field: f.name, Err: errNotPositive}
		}
	}
	if c.BatchWait < 0 {
		return &ConfigError{Field: "BatchWait", Err: errors.New("must not be negative")}
	}
	return nil
}

// drainBatch is the batch while a backlog drains: MaxBatchSize, and never
// less than BatchSize.
func (c Config) drainBatch() int { return max(c.MaxBatchSize, c.BatchSize) }

// NextBatch returns how many records to read after a batch of n that was
// read with a limit of size: MaxBatchSize after a full batch (a backlog is
// draining), BatchSize otherwise (caught up: the first events of a burst
// commit in a small batch). A session starts at MaxBatchSize.
func (c Config) NextBatch(n, size int) int {
	if n >= size {
		return c.drainBatch()
	}
	return c.BatchSize
}

// Session moves one source partition's events into the store.
type Session struct {
	cfg    Config
	st     Store
	node   string
	lease  *lease.Lease
	reader func(ctx context.Context) (source.Reader, error)
	log    *slog.Logger
	rec    SessionMetrics

	wake chan struct{}
	stop chan struct{}
	once sync.Once

	untrimmed int // batches committed since the last trim

	mu sync.Mutex
	// troubleSince is when the source began to fail without a batch
	// committed since (zero while it works); trouble is its last error.
	troubleSince time.Time
	trouble      string
	progress     Progress
}

// Progress is how a session's batches go, as the node's readiness reads
// it (package health): a session whose batches have failed for a while is
// stuck, whatever the reason (the store, the source, a bug).
type Progress struct {
	// FailingSince is when the batches began to fail with none succeeding
	// since; zero while they succeed. Failures counts them, LastError is
	// the last one's error.
	FailingSince time.Time
	Failures     int
	LastError    string
	// LastSuccess is when a batch last succeeded: events applied, or none
	// to read. Zero before the first.
	LastSuccess time.Time
}

// Progress returns how the session's batches go.
func (s *Session) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress
}

// noteProgress records whether the last batch succeeded.
func (s *Session) noteProgress(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.progress
	if err == nil {
		p.FailingSince, p.Failures, p.LastError, p.LastSuccess = time.Time{}, 0, "", time.Now()
		return
	}
	if p.Failures == 0 {
		p.FailingSince = time.Now()
	}
	p.Failures++
	p.LastError = err.Error()
}

// sourceError marks an error of the session's source (opening its reader,
// reading it), as opposed to one of the store.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// SourceTrouble returns since when the session's source has failed without
// a batch read in between (zero when it works), and its last error. A
// source that halted the session on purpose (source.ErrHalted) is not
// trouble: no other node would fare better.
func (s *Session) SourceTrouble() (since time.Time, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.troubleSince, s.trouble
}

// noteSource records whether the last batch's source worked.
func (s *Session) noteSource(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && errors.As(err, new(*sourceError)) && !errors.Is(err, source.ErrHalted) {
		if s.troubleSince.IsZero() {
			s.troubleSince = time.Now()
		}
		s.trouble = err.Error()
		return
	}
	if err == nil {
		s.troubleSince, s.trouble = time.Time{}, ""
	}
}

// Store is what a session needs of the store: to commit its batches under
// the fence, and to show its last error.
type Store interface {
	Apply(ctx context.Context, b store.Batch) error
	RecordError(ctx context.Context, l store.Lease, node, msg string) error
}

// NewSession returns a session for a lease just claimed by node. reader
// returns the source's reader (opened lazily, so that an unreachable source
// is retried like any other error). The session commits only under the
// held lease (package lease): once it ends, at its local deadline or when
// the node finds it lost, the session commits nothing more. cfg must be
// valid (Config.Validate; a node validates its own): NewSession panics
// otherwise, as a zero batch size or interval would spin or stall.
func NewSession(cfg Config, st Store, node string, l *lease.Lease,
	reader func(ctx context.Context) (source.Reader, error), log *slog.Logger) *Session {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("bus.NewSession: invalid config: %v", err))
	}
	row := l.Row()
	return &Session{
		cfg: cfg, st: st, node: node, lease: l, reader: reader,
		log:  log.With("source", row.Source, "partition", row.Partition, "epoch", row.Epoch),
		rec:  sessionMetrics(cfg.Metrics, row.SessionID),
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
}

// Lease returns the lease the session runs under, as the store granted it.
func (s *Session) Lease() store.Lease { return s.lease.Row() }

// Wake tells an idle session that new events may be readable.
func (s *Session) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop asks the session to end after the batch in hand commits.
func (s *Session) Stop() { s.once.Do(func() { close(s.stop) }) }

func (s *Session) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Run applies batches until Stop (returns nil), ctx ends (returns ctx's
// error) or the session is lost: fenced by the store, or its lease ended
// (an error wrapping ErrLost, and the lease's cause: lease.ErrExpired,
// lease.ErrLost).
func (s *Session) Run(ctx context.Context) error {
	work := s.lease.Ctx() // every read and commit ends with the lease
	if planted.SkipFence {
		work = ctx // the planted bug: past its deadline a session goes on
	} else {
		var stop context.CancelFunc
		work, stop = context.WithCancel(work)
		defer stop()
		defer context.AfterFunc(ctx, stop)()
	}
	err := s.run(work)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && work.Err() != nil && s.lease.Ctx().Err() != nil:
		return fmt.Errorf("%w: %w", ErrLost, context.Cause(s.lease.Ctx()))
	}
	return err
}

func (s *Session) run(ctx context.Context) error {
	checkpoint := s.lease.Row().Checkpoint
	// A session just claimed has whatever accumulated meanwhile to catch
	// up on: it reads as if it were draining a backlog.
	size := s.cfg.drainBatch()
	var (
		failures int    // consecutive errors, for the backoff
		heldFor  int    // consecutive reads that found only held records
		shownErr string // the error last recorded in the store
		wait     time.Duration
	)
	for {
		if wait > 0 {
			if !s.sleep(ctx, wait) {
				if err := ctx.Err(); err != nil {
					return err
				}
				return nil // stopped
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.stopping() {
			return nil
		}
		n, held, next, err := s.batch(ctx, checkpoint, size)
		// Even on an error: a batch split around a refused value may
		// have committed its first parts.
		checkpoint = next
		s.noteSource(err)
		s.noteProgress(err)
		switch {
		case errors.Is(err, ErrLost):
			return err
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			size = s.cfg.BatchSize
			failures++
			wait = backoff(failures, s.cfg.MaxBackoff)
			msg := err.Error()
			if msg != shownErr {
				s.log.Warn("batch failed; retrying", "err", msg, "retry_in", wait)
				if rerr := s.st.RecordError(ctx, s.lease.Row(), s.node, msg); rerr == nil {
					shownErr = msg
				}
			}
			continue
		}
		if failures > 0 {
			s.log.Info("session recovered", "after_errors", failures)
			failures = 0
		}
		if n > 0 && shownErr != "" {
			shownErr = "" // Apply cleared it in the store
		} else if shownErr != "" && s.st.RecordError(ctx, s.lease.Row(), s.node, "") == nil {
			shownErr = ""
		}
		if n > 0 || !held {
			heldFor = 0
		}
		full := n >= size
		size = s.cfg.NextBatch(n, size)
		switch {
		case full:
			wait = 0 // more is waiting
		case held && n > 0:
			wait = s.cfg.HeldRetry
		case held:
			// Records wait behind a transaction that is still open: it
			// usually ends within milliseconds; a long one (someone's
			// open psql session) must not make the session spin, so
			// the retry backs off up to the poll interval.
			heldFor++
			wait = min(s.cfg.HeldRetry<<min(heldFor-1, 16), s.cfg.PollInterval)
		case n > 0:
			wait = 0 // read again: events may have come meanwhile
		default:
			wait = s.cfg.PollInterval
		}
	}
}

// sleep waits for d, a wake-up or the end; false means stop or ctx ended.
func (s *Session) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.wake:
		return true
	case <-s.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// pause waits for d unless the session is stopped or ctx ends meanwhile
// (then it returns false). Wake-ups do not cut it short.
func (s *Session) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// batch reads up to size records, applies and trims them. It returns how
// many records it covered and the new checkpoint; on an error, the
// checkpoint of what it committed before the error (a batch split around
// a refused value commits in parts), else from.
func (s *Session) batch(ctx context.Context, from store.Position, size int) (n int, held bool, next store.Position, err error) {
	r, err := s.reader(ctx)
	if err != nil {
		return 0, false, from, fmt.Errorf("open source: %w", &sourceError{err})
	}
	recs, held, err := r.Read(ctx, s.lease.Row().Partition, from, size)
	if err == nil && s.cfg.BatchWait > 0 && len(recs) > 0 && len(recs) < size && s.pause(ctx, s.cfg.BatchWait) {
		recs, held, err = r.Read(ctx, s.lease.Row().Partition, from, size)
	}
	if err != nil {
		return 0, false, from, fmt.Errorf("read source: %w", &sourceError{err})
	}
	if len(recs) == 0 {
		return 0, held, from, nil
	}
	maxSize := s.cfg.MaxEventSize
	if s.cfg.CurrentMaxEventSize != nil {
		maxSize = s.cfg.CurrentMaxEventSize()
	}
	entries := make([]entry, len(recs))
	for i, rec := range recs {
		ev, err := event.Decode(rec.Payload, rec.WrittenAt, maxSize)
		if err == nil {
			err = source.CheckSegment(rec, ev)
		}
		if err == nil && s.cfg.Validator != nil {
			if err = s.cfg.Validator.Validate(ctx, ev); err != nil && !errors.As(err, new(*event.Error)) {
				return 0, false, from, fmt.Errorf("check events against the deployed definitions: %w", err)
			}
		}
		entries[i] = entry{Record: rec, ev: ev}
		if err != nil {
			entries[i].failure = &store.Failure{SessionID: s.lease.Row().SessionID, Position: rec.Position, Reason: err.Error(), Payload: rec.Payload, WrittenAt: rec.WrittenAt}
		}
	}
	next, err = s.apply(ctx, from, entries)
	if err != nil {
		return 0, false, next, err
	}
	s.untrimmed++
	// Trimming is idempotent and covers everything up to the checkpoint,
	// so while a backlog drains it runs every TrimEvery batches, and once
	// the session catches up (a short batch) at once.
	if len(recs) < size || s.untrimmed >= s.cfg.TrimEvery {
		if err := r.Trim(ctx, s.lease.Row().Partition, next); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("trim source failed; will trim with a later batch", "err", err)
			}
		} else {
			s.untrimmed = 0
		}
	}
	return len(recs), held, next, nil
}

// entry is a record read from the source, decoded into ev, or failed.
type entry struct {
	store.Record
	ev      event.Event
	failure *store.Failure // set when the record cannot be applied
}

// apply commits entries, which follow from, as one batch; when the store
// refuses a value of it, it isolates the records at fault (package doc).
// It returns the checkpoint committed: the last entry's position, or on an
// error that of the last part committed.
func (s *Session) apply(ctx context.Context, from store.Position, entries []entry) (store.Position, error) {
	err := s.applyPart(ctx, from, entries)
	var refused *store.DataRefusedError
	switch {
	case err == nil:
		return entries[len(entries)-1].Position, nil
	case !errors.As(err, &refused):
		return from, err
	}
	s.log.Warn("the store refused a value of the batch; isolating the events at fault", "records", len(entries), "reason", refused.Reason)
	return s.isolate(ctx, from, entries, refused)
}

// isolate applies entries, whose batch the store refused as data
// (refused), in halves, each a batch of its own, down to the records that
// the store refuses alone, which it quarantines with the store's reason.
// It returns the checkpoint committed; on an error other than a data
// refusal, it stops there.
func (s *Session) isolate(ctx context.Context, from store.Position, entries []entry, refused *store.DataRefusedError) (store.Position, error) {
	if len(entries) == 1 {
		e := entries[0]
		if e.failure != nil {
			// Only the quarantine of a failure was refused: nothing
			// left to split, and retrying is all that can be done.
			return from, fmt.Errorf("apply batch: quarantine the event at %s: %w", position(e.Position), refused)
		}
		e.failure = &store.Failure{SessionID: s.lease.Row().SessionID, Position: e.Position,
			Reason: "the store refused the event: " + refused.Reason, Payload: e.Payload, WrittenAt: e.WrittenAt}
		if err := s.applyPart(ctx, from, []entry{e}); err != nil {
			return from, err
		}
		return e.Position, nil
	}
	half := len(entries) / 2
	for _, part := range [][]entry{entries[:half], entries[half:]} {
		err := s.applyPart(ctx, from, part)
		var partRefused *store.DataRefusedError
		switch {
		case err == nil:
			from = part[len(part)-1].Position
		case errors.As(err, &partRefused):
			if from, err = s.isolate(ctx, from, part, partRefused); err != nil {
				return from, err
			}
		default:
			return from, err
		}
	}
	return from, nil
}

// applyPart commits entries, which follow from, as one batch: their events
// coalesced per instance, their failures quarantined, the checkpoint moved
// to the last one's position, under the fence and the lease's local
// deadline.
func (s *Session) applyPart(ctx context.Context, from store.Position, entries []entry) error {
	b := store.Batch{Lease: s.lease.Row(), Node: s.node, From: from, Checkpoint: entries[len(entries)-1].Position}
	events := make([]event.Event, 0, len(entries))
	for _, e := range entries {
		if e.failure != nil {
			b.Failures = append(b.Failures, *e.failure)
			continue
		}
		events = append(events, e.ev)
	}
	b.Deltas = event.Coalesce(events)
	b.Applied = len(events)
	if !s.lease.Trusted() && !planted.SkipFence {
		return fmt.Errorf("%w: the lease's local deadline passed before the batch could commit", ErrLost)
	}
	start := time.Now()
	if err := s.st.Apply(ctx, b); err != nil {
		s.rec.Failed(time.Since(start))
		if errors.Is(err, store.ErrFenced) {
			return fmt.Errorf("%w: %v", ErrLost, err)
		}
		return fmt.Errorf("apply batch: %w", err)
	}
	s.rec.Committed(b.Applied, len(b.Deltas), len(b.Failures), time.Since(start))
	for _, f := range b.Failures {
		s.log.Warn("event quarantined", "position", position(f.Position), "reason", f.Reason)
	}
	return nil
}

func position(p store.Position) string { return fmt.Sprintf("%d/%d", p.Major, p.Minor) }

func backoff(failures int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
