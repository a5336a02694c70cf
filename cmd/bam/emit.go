package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

const (
	// emitBatch is how many events one store transaction writes.
	emitBatch = 1000
	// progressEvery is how often emit says how far it got, on a terminal.
	progressEvery = 5 * time.Second
	// maxShownErrors bounds the refused lines emit prints one by one.
	maxShownErrors = 100
)

func (a *app) emitCommand() *cobra.Command {
	var (
		sourceName string
		one        eventFlags
		file       string
		maxSize    int
		strict     bool
		again      bool
		refusedTo  string
	)
	cmd := &cobra.Command{
		Use:   "emit --source NAME (--activity A (--instance ID | --continuation TOKEN) --kind K [flags of the kind]... | --file PATH|-)",
		Short: "Write events to a buffer source",
		Long: `emit writes business events to a buffer source, either one event given by
flags or NDJSON (one event per line, in the JSON form below) from a file or
from stdin (--file -). It returns once the events are durable in the store.

  {"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update",
   "time": "2026-11-25T10:02:00Z", "data": {"Approved": "2026-11-25T10:02:00Z", "Amount": 1200}}

kind is begin, update, end, enable-continuation, relate or reference (docs/EVENTS.md
has each, with its fields); time is optional (default: now); data values
are strings, numbers, booleans or null. Every line is checked before it is
written, as the nodes will check it: its size with the pool's
max-event-size, its data against its activity's deployed definition, and
its activity against the pool's require-definitions (bam config; the flags
say otherwise for this command). A bad line is reported with its number
and field and left out, the good lines are written all the same, and emit
then exits with status 1. Do not send the same input again once its
refused lines are fixed: its good lines would be written twice. Send the
refused lines alone: --refused FILE writes them to FILE, as they were read,
to fix there and send with bam emit --file FILE.

--data NAME=VALUE takes VALUE as JSON when it is valid JSON (1200, true,
null, "quoted text") and as a string otherwise.

A file is written 1,000 events to a transaction, each with an idempotency
key made of the source and the input lines it covers: when a run stops
(an error, SIGINT, SIGTERM), it says up to which line it wrote, and running
the same command again writes the rest and skips what was written, for 24
hours (--again writes it all again). On a terminal, emit says how far it got
every few seconds.

Every kind can be given by
flags: --continuation TOKEN in place of --instance for a continuation's
events, --token for enable-continuation, --related ACTIVITY/INSTANCE for
relate, --reference-type, --reference-name, --reference-value and
--reference-data for reference.`,
		Example: `  bam emit --source orders --activity PurchaseOrder --instance PO-1042 --kind begin --data Customer=Contoso
  bam emit --source orders --activity PurchaseOrder --instance PO-1042 --kind update --data Amount=1200 --data Approved=2026-11-25T10:02:00Z
  bam emit --source orders --activity PurchaseOrder --instance PO-1042 --kind enable-continuation --token ship-PO-1042
  bam emit --source orders --activity PurchaseOrder --continuation ship-PO-1042 --kind update --data Carrier=UPS
  bam emit --source orders --activity PurchaseOrder --instance PO-1042 --kind relate --related Invoice/INV-7
  bam emit --source orders --file events.ndjson
  producer | bam emit --source orders --file -`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			fromFlags := one.given()
			var single *event.Event
			switch {
			case file != "" && fromFlags:
				return usageErrorf("give either --file or one event's flags (--activity, --instance, --kind, ...), not both")
			case file == "" && !fromFlags:
				return usageErrorf("nothing to emit: give --activity, --instance and --kind for one event, or --file PATH (- for stdin) for NDJSON")
			case fromFlags && refusedTo != "":
				return usageErrorf("--refused goes with --file: one event given by flags is refused as a whole")
			case fromFlags:
				if one.activity == "" || (one.instance == "" && one.continuation == "") || one.kind == "" {
					return usageErrorf("one event needs --activity, --instance (or --continuation) and --kind")
				}
				raw, err := one.json()
				if err != nil {
					return err
				}
				// Its size is checked with the pool's limit, once the store
				// is open: as written (emitter.check).
				ev, err := event.Decode(raw, time.Now(), math.MaxInt)
				if err != nil {
					return flagError(err)
				}
				single = &ev
			}

			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				if err := a.poolDefaults(ctx, st, cmd.Flags()); err != nil {
					return err
				}
				if maxSize < 1 {
					return usageErrorf("--max-event-size must be at least 1")
				}
				src, err := st.Source(ctx, sourceName)
				switch {
				case errors.Is(err, store.ErrNotFound):
					return noSource(sourceName, sourceNames(ctx, st)...)
				case err != nil:
					return fmt.Errorf("read source %q: %w", sourceName, err)
				case src.Kind != store.KindBuffer:
					return fmt.Errorf("source %s is a %s source: applications write its events to their outbox table (see bam source install-outbox); bam emit writes to buffer sources only", src.Name, src.Kind)
				case !src.Enabled:
					return fmt.Errorf("source %s is disabled; enable it first with: bam source enable %s", src.Name, src.Name)
				}
				if src.Paused {
					fmt.Fprintf(a.stderr, "source %s is paused: what is written waits in it until bam source resume %s\n", src.Name, src.Name)
				}

				w := &emitter{st: st, src: src, maxSize: maxSize, defs: catalog.New(st, catalog.Options{Strict: strict})}
				if single != nil {
					payload, bad, err := w.check(ctx, *single)
					if err != nil {
						return err
					}
					if bad != nil {
						return fmt.Errorf("event refused: %w", bad)
					}
					err = w.add(ctx, *single, payload, 1)
					if err == nil {
						err = w.flush(ctx)
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "wrote 1 event to source %s\n", src.Name)
					return nil
				}

				in, err := a.openInput(file)
				if err != nil {
					return err
				}
				defer in.Close()
				var keep *refusedFile
				if refusedTo != "" {
					if keep, err = createRefusedFile(refusedTo); err != nil {
						return err
					}
					defer keep.discard()
				}
				w.idempotent = true
				if again {
					var b [16]byte
					_, _ = rand.Read(b[:])
					w.salt = hex.EncodeToString(b[:])
				}
				// SIGINT and SIGTERM stop at a line: what is written stays
				// written, and the command says where it stopped.
				ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				refused, err := a.emitLines(ctx, w, in, keep)
				if keep != nil {
					if kerr := keep.close(); kerr != nil && err == nil {
						err = kerr
					}
				}
				skipped := ""
				if w.skipped > 0 {
					skipped = fmt.Sprintf("; %d event%s an earlier run of this input wrote skipped", w.skipped, plural(w.skipped))
				}
				if err != nil {
					if w.written+w.skipped > 0 {
						fmt.Fprintf(a.stdout, "wrote %d event%s to source %s, up to line %d, before it stopped%s\n",
							w.written, plural(w.written), src.Name, w.lastLine, skipped)
					}
					resume := "run the same command again to write the rest: the lines already written are skipped (for 24 h)"
					if errors.Is(err, errInterrupted) || ctx.Err() != nil {
						return fmt.Errorf("interrupted; %s", resume)
					}
					return fmt.Errorf("%w; %s", err, resume)
				}
				fmt.Fprintf(a.stdout, "wrote %d event%s to source %s%s\n", w.written, plural(w.written), src.Name, skipped)
				if refused > 0 {
					return refusedLinesError(refused, w.written+w.skipped, src.Name, refusedTo)
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&sourceName, "source", "", "the buffer source to write to")
	f.StringVar(&one.activity, "activity", "", "one event: the activity, e.g. PurchaseOrder")
	f.StringVar(&one.instance, "instance", "", "one event: the instance id, e.g. PO-1042")
	f.StringVar(&one.continuation, "continuation", "", "one event: the token of the continuation it belongs to, in place of --instance")
	f.StringVar(&one.kind, "kind", "", "one event: begin, update, end, enable-continuation, relate or reference")
	f.StringVar(&one.at, "time", "", "one event: when it happened, RFC 3339 (default: now)")
	f.StringArrayVar(&one.data, "data", nil, "one event: a data item NAME=VALUE (repeat for more)")
	f.StringVar(&one.token, "token", "", "one enable-continuation event: the token the continuation will use")
	f.StringVar(&one.related, "related", "", "one relate event: the related instance, ACTIVITY/INSTANCE (e.g. Invoice/INV-7)")
	f.StringVar(&one.refType, "reference-type", "", "one reference event: the reference's type, e.g. message, document, url, instance")
	f.StringVar(&one.refName, "reference-name", "", "one reference event: the reference's name")
	f.StringVar(&one.refValue, "reference-value", "", "one reference event: the reference's value")
	f.StringVar(&one.refData, "reference-data", "", "one reference event: the reference's long data (optional)")
	f.StringVar(&file, "file", "", "NDJSON events, one per line; - reads stdin")
	f.BoolVar(&again, "again", false, "--file: write every line, even those an earlier run of the same input wrote (by default they are skipped for 24 h)")
	f.StringVar(&refusedTo, "refused", "", "--file: write the refused lines, as they were read, to this file (replaced; empty when none is refused), to fix and send alone")
	f.IntVar(&maxSize, "max-event-size", event.DefaultMaxSize, "bytes; a larger event is refused; the pool's max-event-size (bam config), as the nodes check, unless given")
	f.BoolVar(&strict, "require-definitions", false, "refuse the events of activities without a deployed definition; the pool's require-definitions (bam config), as the nodes check, unless given")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

// eventFlags are the flags of one event given on the command line: one
// per field of the event's JSON form (docs/EVENTS.md), so that every kind
// can be emitted without a file.
type eventFlags struct {
	activity, instance, continuation, kind, at string
	data                                       []string
	token, related                             string
	refType, refName, refValue, refData        string
}

// given reports whether any of the event's flags is set.
func (f eventFlags) given() bool {
	return f.activity != "" || f.instance != "" || f.continuation != "" || f.kind != "" || f.at != "" ||
		len(f.data) > 0 || f.token != "" || f.related != "" ||
		f.refType != "" || f.refName != "" || f.refValue != "" || f.refData != ""
}

// json builds the event's JSON form. Fields the kind does not take are
// kept, so that the event's check names the flag that does not belong.
func (f eventFlags) json() ([]byte, error) {
	d, err := parseData(f.data)
	if err != nil {
		return nil, err
	}
	w := struct {
		Activity     string                     `json:"activity"`
		Instance     string                     `json:"instance,omitempty"`
		Continuation string                     `json:"continuation,omitempty"`
		Kind         string                     `json:"kind"`
		Time         string                     `json:"time,omitempty"`
		Data         map[string]json.RawMessage `json:"data,omitempty"`
		Token        string                     `json:"token,omitempty"`
		Related      *event.Related             `json:"related,omitempty"`
		Reference    *event.Reference           `json:"reference,omitempty"`
	}{Activity: f.activity, Instance: f.instance, Continuation: f.continuation, Kind: f.kind, Time: f.at, Data: d, Token: f.token}
	if f.related != "" {
		// An activity name has no '/'; an instance id may.
		activity, instance, ok := strings.Cut(f.related, "/")
		if !ok || activity == "" || instance == "" {
			return nil, usageErrorf("--related %q: use ACTIVITY/INSTANCE, e.g. Invoice/INV-7", f.related)
		}
		w.Related = &event.Related{Activity: activity, Instance: instance}
	}
	if f.refType != "" || f.refName != "" || f.refValue != "" || f.refData != "" {
		w.Reference = &event.Reference{Type: f.refType, Name: f.refName, Value: f.refValue, Data: f.refData}
	}
	raw, err := json.Marshal(w)
	if err != nil {
		// Only an object or array value can get here; name its item.
		return nil, usageErrorf("--data: %v", err)
	}
	return raw, nil
}

// refusedLinesError is emit's answer to an input of which some lines were
// refused: the others are written, so the input must not be sent again
// (its idempotency keys cover whole batches of lines, refused ones
// included, so fixing a line changes them, and every good line of its
// batch would be written twice); only the refused lines, fixed.
func refusedLinesError(refused, written int, source, refusedTo string) error {
	lines := fmt.Sprintf("refused %d line%s (see above)", refused, plural(refused))
	others := fmt.Sprintf("the other %d event%s %s written", written, plural(written), map[bool]string{true: "is", false: "are"}[written == 1])
	if refusedTo != "" {
		return fmt.Errorf("%s, kept in %s; %s: fix %s and send it alone (bam emit --source %s --file %s), not this input again, which would write its good lines twice",
			lines, refusedTo, others, refusedTo, source, refusedTo)
	}
	return fmt.Errorf("%s; %s: send only the refused lines, fixed, not this input again, which would write its good lines twice (--refused FILE keeps the refused lines in FILE, to fix and send)",
		lines, others)
}

// refusedFile is where emit --refused keeps the lines it refused, as they
// were read. It is written under a temporary name and renamed at the end,
// so that --refused may name the --file being read (fixing a refused
// file and sending it again, keeping what is still refused).
type refusedFile struct {
	path string
	tmp  *os.File
	w    *bufio.Writer
}

func createRefusedFile(path string) (*refusedFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("--refused: %w", err)
	}
	return &refusedFile{path: path, tmp: tmp, w: bufio.NewWriter(tmp)}, nil
}

// Write takes whole lines, with their end of line.
func (r *refusedFile) Write(p []byte) (int, error) { return r.w.Write(p) }

// close writes the file under its name.
func (r *refusedFile) close() error {
	err := r.w.Flush()
	if cerr := r.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(r.tmp.Name(), r.path)
	}
	if err != nil {
		return fmt.Errorf("--refused: write the refused lines to %s: %w", r.path, err)
	}
	r.tmp = nil
	return nil
}

// discard removes the temporary file when close did not rename it.
func (r *refusedFile) discard() {
	if r.tmp != nil {
		_ = r.tmp.Close()
		_ = os.Remove(r.tmp.Name())
	}
}

// flagError turns an event check's error into one naming the flag at fault.
func flagError(err error) error {
	var evErr *event.Error
	if !errors.As(err, &evErr) {
		return &usageError{err}
	}
	flag := evErr.Field
	switch {
	case strings.HasPrefix(flag, "data."):
		flag = "--data " + strings.TrimPrefix(flag, "data.")
	case flag == "related" || strings.HasPrefix(flag, "related."):
		flag = "--related"
	case flag == "reference":
		flag = "--reference-type, --reference-name, --reference-value"
	case strings.HasPrefix(flag, "reference."):
		flag = "--reference-" + strings.TrimPrefix(flag, "reference.")
	case flag != "":
		flag = "--" + flag
	default:
		return usageErrorf("event refused: %s", evErr.Reason)
	}
	return usageErrorf("%s: %s", flag, evErr.Reason)
}

// errInterrupted: emit was stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// isTerminal reports whether w is a terminal, where progress is shown.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// emitLines checks each line of in and writes the good ones, and the
// refused ones to keep when it is not nil. It returns how many lines it
// refused; an error means reading or writing failed.
func (a *app) emitLines(ctx context.Context, w *emitter, in io.Reader, keep *refusedFile) (refused int, err error) {
	lines := newLineReader(in, w.maxSize)
	if keep != nil {
		lines.oversize = keep
	}
	progress, showProgress := time.Now(), isTerminal(a.stderr)
	for {
		if ctx.Err() != nil {
			return refused, errInterrupted
		}
		line, size, n, err := lines.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if showProgress && time.Since(progress) >= progressEvery {
			progress = time.Now()
			fmt.Fprintf(a.stderr, "emit: line %d read, %d events written\n", n, w.written+w.skipped)
		}
		if err == nil {
			w.read(n, line)
		}
		if err != nil {
			// Write what was checked; it is good input.
			if ferr := w.flush(ctx); ferr != nil {
				return refused, ferr
			}
			return refused, fmt.Errorf("read line %d: %w", n, err)
		}
		var ev event.Event
		var payload []byte
		var bad error
		oversize := size > len(line)
		if oversize {
			bad = &event.Error{Reason: fmt.Sprintf("event is %d bytes, over the limit of %d", size, w.maxSize)}
		} else {
			if len(strings.TrimSpace(string(line))) == 0 {
				continue
			}
			ev, bad = event.Decode(line, time.Now(), w.maxSize)
		}
		if bad == nil {
			if payload, bad, err = w.check(ctx, ev); err != nil {
				if ferr := w.flush(ctx); ferr != nil {
					return refused, ferr
				}
				return refused, err
			}
		}
		if bad != nil {
			refused++
			if keep != nil && !oversize { // the reader kept an oversize line whole
				_, _ = keep.Write(append(line, '\n'))
			}
			if refused <= maxShownErrors {
				fmt.Fprintf(a.stderr, "line %d: %v\n", n, bad)
			} else if refused == maxShownErrors+1 {
				fmt.Fprintf(a.stderr, "(more refused lines not shown)\n")
			}
			continue
		}
		if err := w.add(ctx, ev, payload, n); err != nil {
			return refused, err
		}
	}
	return refused, w.flush(ctx)
}

// emitter writes checked events to a buffer source in batches of
// emitBatch, one store transaction each.
type emitter struct {
	st      store.Store
	src     store.Source
	maxSize int // bytes, as the nodes check it
	defs    *catalog.Catalog
	batch   []store.BufferEvent
	last    int // the line of the batch's last event
	written int // events committed
	// lastLine is the line of the last committed event.
	lastLine int

	// idempotent: each batch of a file is written with an idempotency key
	// made of the source, its first line and the input lines it covers,
	// so that running the same command again skips what an interrupted
	// run wrote (for store.DefaultIdempotencyRetention). salt is mixed in
	// by --again, to write the same input once more.
	idempotent bool
	salt       string
	chunk      hash.Hash // the input lines since the batch began
	first      int       // the batch's first input line
	skipped    int       // events an earlier run wrote already
}

// read notes an input line of the batch being built (accepted or not), for
// its idempotency key.
func (e *emitter) read(n int, line []byte) {
	if !e.idempotent {
		return
	}
	if e.chunk == nil {
		e.chunk = sha256.New()
		fmt.Fprintf(e.chunk, "%s\n%s\n%d\n", e.src.Name, e.salt, n)
		e.first = n
	}
	e.chunk.Write(line)
	e.chunk.Write([]byte{'\n'})
}

// check checks ev as the nodes will: the size of the payload it is
// written as (compact, with its time, which may make it larger than its
// input) and its activity's deployed definition. payload is what to
// write, bad why the event does not fit, err a failure to read the
// definitions.
func (e *emitter) check(ctx context.Context, ev event.Event) (payload []byte, bad, err error) {
	payload = event.Encode(ev)
	if len(payload) > e.maxSize {
		return nil, &event.Error{Reason: fmt.Sprintf("event is %d bytes as written (compact, with its time), over the limit of %d", len(payload), e.maxSize)}, nil
	}
	if err := e.defs.Validate(ctx, ev); err != nil {
		if errors.As(err, new(*event.Error)) {
			return nil, err, nil
		}
		return nil, nil, err
	}
	return payload, nil, nil
}

func (e *emitter) add(ctx context.Context, ev event.Event, payload []byte, line int) error {
	e.batch = append(e.batch, store.BufferEvent{
		Partition: event.Partition(ev.Segment(), e.src.Partitions),
		Payload:   payload,
	})
	e.last = line
	if len(e.batch) >= emitBatch {
		return e.flush(ctx)
	}
	return nil
}

// flush writes the batch. A repartition of the source since its partitions
// were read refuses the whole batch (store.PartitionsChangedError): the
// events are filed under the new partitions and written again.
func (e *emitter) flush(ctx context.Context) error {
	partitions, err := store.AppendRefiled(e.batch, func() error { return e.write(ctx) })
	if partitions > 0 {
		e.src.Partitions = partitions
	}
	return err
}

// write appends the batch in one transaction, with its idempotency key
// when the input is a file.
func (e *emitter) write(ctx context.Context) error {
	if len(e.batch) == 0 {
		return nil
	}
	if !e.idempotent {
		if err := e.st.AppendBuffer(ctx, e.src.Name, e.batch); err != nil {
			return fmt.Errorf("write %d events to source %s: %w", len(e.batch), e.src.Name, err)
		}
		e.written += len(e.batch)
	} else {
		sum := e.chunk.Sum(nil)
		key := store.IdempotencyKey{Key: "bam-emit:" + hex.EncodeToString(sum), BodyHash: sum}
		resp := store.StoredResponse{Status: 200, Body: fmt.Appendf(nil, `{"events":%d,"lines":"%d-%d"}`, len(e.batch), e.first, e.last)}
		replay, err := e.st.AppendBufferIdempotent(ctx, e.src.Name, key, e.batch, resp)
		if err != nil {
			return fmt.Errorf("write %d events to source %s: %w", len(e.batch), e.src.Name, err)
		}
		if replay != nil {
			e.skipped += len(e.batch) // an earlier run of this input wrote them
		} else {
			e.written += len(e.batch)
		}
		e.chunk = nil
	}
	e.lastLine = e.last
	e.batch = e.batch[:0]
	return nil
}

// lineReader reads lines without holding more than max bytes of one.
type lineReader struct {
	r    *bufio.Reader
	max  int
	line int
	// oversize, when set, gets each line over max whole, with an end of
	// line, as it is read (next returns it cut).
	oversize io.Writer
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64*1024), max: max}
}

// next returns the next line without its end of line, its full size
// (larger than len(line) when it was over max and cut) and its number.
func (l *lineReader) next() (line []byte, size int, num int, err error) {
	l.line++
	var buf []byte
	spilled := false // buf went to oversize, and so does the rest
	endOfLine := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		size += len(chunk)
		room := l.max + 2 - len(buf) // +2: room for "\r\n"
		if l.oversize != nil && (spilled || len(chunk) > room) {
			if !spilled {
				_, _ = l.oversize.Write(buf)
				spilled = true
			}
			_, _ = l.oversize.Write(chunk)
		}
		if room > 0 {
			buf = append(buf, chunk[:min(room, len(chunk))]...)
		}
		if len(chunk) > 0 {
			endOfLine = chunk[len(chunk)-1] == '\n'
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && size == 0 {
			return nil, 0, l.line, io.EOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, l.line, err
		}
		// The end of line is in the last chunk (but for a "\r" cut off
		// from its "\n" by the buffer's edge, which only miscounts the
		// size of an oversize line by one).
		if k := len(chunk); k > 0 && chunk[k-1] == '\n' {
			size--
			if k > 1 && chunk[k-2] == '\r' {
				size--
			}
		}
		break
	}
	if size > l.max {
		if l.oversize != nil {
			if !spilled { // it fit in buf, end of line and all
				_, _ = l.oversize.Write(buf)
			}
			if !endOfLine {
				_, _ = l.oversize.Write([]byte{'\n'})
			}
		}
		return buf[:min(len(buf), l.max)], size, l.line, nil
	}
	return buf[:size], size, l.line, nil
}
