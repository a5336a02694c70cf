package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// activity is the activity every workload instance belongs to.
const activity = "ChaosOrder"

// history is what the writers and observers record during a run; safe for
// concurrent use.
type history struct {
	mu        sync.Mutex
	events    []check.Event
	snapshots []check.Snapshot
	owners    []check.OwnerSample
	recent    []event.Key // instances written lately, for snapshots
}

func (h *history) wrote(evs []check.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, evs...)
	for _, e := range evs {
		if !e.Poison && !e.Itemless && e.Track == check.Main && e.Seq == 1 {
			h.recent = append(h.recent, event.Key{Activity: e.Activity, Instance: e.Instance})
			if len(h.recent) > 512 {
				h.recent = h.recent[len(h.recent)-256:]
			}
		}
	}
}

// instanceRun is an instance a writer is in the middle of: its events all
// carry the same time (see package check: the latest applied event then
// shows in the item seq).
type instanceRun struct {
	id   string
	at   time.Time
	next int // the Seq of the next event
	last int // the Seq of its end event
	// A continuation, when token is set: events 1..clast under the token,
	// the first of them cstart batches after the begin (which carries the
	// enable-continuation): in its own partition, it may well be applied
	// before the enable.
	token         string
	cnext, clast  int
	cstart, since int // since: batches since the begin
	// relateTo is an earlier instance of the writer, related at the begin.
	relateTo string
}

// done says every event of the instance has been written.
func (in *instanceRun) done() bool {
	return in.next > in.last && (in.token == "" || in.cnext > in.clast)
}

// load scales the writers' pace: during a burst fault, writers pause a
// tenth as long between batches. While plainUntil is ahead (a mid-batch
// fault waits for a batch to cut), they start only instances of plain
// begin, update and end events, whose batches the store applies in one
// pipelined request.
type load struct{ burstUntil, plainUntil atomic.Int64 } // unix nanoseconds

func (l *load) plain() bool { return time.Now().UnixNano() < l.plainUntil.Load() }

func (l *load) pause(every time.Duration) time.Duration {
	if time.Now().UnixNano() < l.burstUntil.Load() {
		return every / 10
	}
	return every
}

// writer writes the events of a few instances at a time to one source,
// each instance's events one after another, and records every event with
// its outcome.
type writer struct {
	name     string
	src      store.Source
	rng      *rand.Rand
	poison   float64 // probability of a poison event per batch
	inFlight []*instanceRun
	made     int // instances started
	poisoned int
	hist     *history
	load     *load
}

func newWriter(name string, src store.Source, seed uint64, poison float64, hist *history, l *load) *writer {
	return &writer{name: name, src: src, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), poison: poison, hist: hist, load: l}
}

// batch returns the next event of each instance in flight (starting new
// instances as old ones end), and sometimes a poison event.
func (w *writer) batch(instances int) ([]check.Event, [][]byte) {
	plain := w.load != nil && w.load.plain()
	for len(w.inFlight) < instances {
		w.made++
		in := &instanceRun{
			id:   fmt.Sprintf("%s-%d", w.name, w.made),
			at:   time.Now().UTC().Truncate(time.Microsecond),
			next: 1,
			last: 2 + w.rng.IntN(10),
		}
		// The random draws are the same whether plain or not: a seed keeps
		// its schedule.
		if w.rng.Float64() < continuations {
			clast, cstart := 1+w.rng.IntN(5), w.rng.IntN(3)
			if !plain {
				in.token, in.cnext, in.clast, in.cstart = in.id+"~c", 1, clast, cstart
			}
		}
		if w.made > 1 && w.rng.Float64() < relations {
			relateTo := fmt.Sprintf("%s-%d", w.name, w.made-1-w.rng.IntN(min(w.made-1, 20)))
			if !plain {
				in.relateTo = relateTo
			}
		}
		w.inFlight = append(w.inFlight, in)
	}
	var evs []check.Event
	var payloads [][]byte
	add := func(e check.Event, payload []byte) {
		e.Source, e.Activity = w.src.Name, activity
		evs = append(evs, e)
		payloads = append(payloads, payload)
	}
	kept := w.inFlight[:0]
	for _, in := range w.inFlight {
		if in.next <= in.last {
			kind := event.Update
			switch in.next {
			case 1:
				kind = event.Begin
			case in.last:
				kind = event.End
			}
			add(check.Event{ID: fmt.Sprintf("%s-%d", in.id, in.next), Instance: in.id, Seq: in.next, Last: kind == event.End},
				eventJSON(map[string]any{"instance": in.id, "kind": kind, "data": check.EventData(in.next)}, in.at))
			if in.next == 1 && in.token != "" {
				add(check.Event{ID: in.id + "-enable", Instance: in.id, Token: in.token, Itemless: true},
					eventJSON(map[string]any{"instance": in.id, "kind": event.EnableContinuation, "token": in.token}, in.at))
			}
			if in.next == 1 && in.relateTo != "" {
				add(check.Event{ID: in.id + "-relate", Instance: in.id, Itemless: true, Related: activity + "/" + in.relateTo},
					eventJSON(map[string]any{"instance": in.id, "kind": event.Relate,
						"related": map[string]string{"activity": activity, "instance": in.relateTo}}, in.at))
			}
			in.next++
		}
		if in.token != "" && in.since >= in.cstart && in.cnext <= in.clast {
			kind := event.Update
			if in.cnext == in.clast {
				kind = event.End
			}
			add(check.Event{ID: fmt.Sprintf("%s-c%d", in.id, in.cnext), Instance: in.id, Track: check.Cont, Token: in.token,
				Seq: in.cnext, Last: kind == event.End},
				eventJSON(map[string]any{"continuation": in.token, "kind": kind, "data": check.ContinuationData(in.cnext)}, in.at))
			in.cnext++
		}
		in.since++
		if !in.done() {
			kept = append(kept, in)
		}
	}
	w.inFlight = kept
	if w.rng.Float64() < w.poison {
		w.poisoned++
		id := fmt.Sprintf("poison-%s-%d", w.name, w.poisoned)
		p := poisonEvent(id, w.poisoned, w.src.Kind == store.KindBuffer)
		evs = append(evs, check.Event{ID: id, Source: w.src.Name, Activity: activity, Instance: id, Poison: true,
			PoisonKind: p.kind, WantReason: p.reason})
		payloads = append(payloads, p.payload)
	}
	return evs, payloads
}

// workloadDefinition is the workload's activity as deployed: its items
// typed (check.EventData, check.ContinuationData).
func workloadDefinition(alertHook string) definition.File {
	text := "activities:\n  - name: " + activity + "\n    items:\n"
	item := func(name string) { text += "      - {name: " + name + ", type: integer}\n" }
	item("seq")
	item("cseq")
	for n := 1; n <= 11; n++ {
		item(fmt.Sprintf("e%d", n))
	}
	for n := 1; n <= 5; n++ {
		item(fmt.Sprintf("c%d", n))
	}
	text += workloadAggregations + workloadAlert(alertHook)
	f, err := definition.Parse([]byte(text))
	if err != nil {
		panic(fmt.Sprintf("the workload's definition: %v\n%s", err, text)) // a constant: cannot fail
	}
	return f
}

// workloadAggregations are kept by the store through the run, under every
// fault, and compared with a recomputation from the instances at its end
// (check.KindAggregation): ranges, a time bucket, sums, a multiset (max,
// min) and a duration, over instances that move from active to completed.
const workloadAggregations = `    aggregations:
      - name: BySeq
        dimensions:
          - {item: seq, ranges: [3, 6, 9]}
        measures:
          - {name: events, function: sum, item: seq}
          - {name: highest, function: max, item: seq}
          - {name: lowest_cseq, function: min, item: cseq}
          - {name: took, function: avg, from: begin_time, to: end_time}
      - name: ByMinute
        dimensions:
          - {item: begin_time, bucket: minute}
        measures:
          - {name: continued, function: count, item: cseq}
          - {name: last_seen, function: max, item: e11}
`

// The share of instances that open a continuation, and that relate to an
// earlier instance.
const (
	continuations = 0.3
	relations     = 0.25
)

// eventJSON returns fields as an event of the workload's activity at time at.
func eventJSON(fields map[string]any, at time.Time) []byte {
	fields["activity"] = activity
	fields["time"] = at.Format(time.RFC3339Nano)
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err) // only strings, numbers and maps of them: cannot fail
	}
	return b
}

// poison is an event that bam must quarantine: its payload, what is wrong
// with it, and what the reason of its quarantine must say ("" for any
// reason).
type poison struct {
	payload      []byte
	kind, reason string
}

// poisonEvent returns poison event n, of one of several kinds of wrong in
// turn, with id inside so that the checker finds it among the failed
// events. Writers put them straight into the buffer or the outbox, past
// the checks of emit, the HTTP API and the SDK, as an application may.
// anyBytes says the source holds any bytes (a buffer: bytea); an outbox's
// text column holds no byte that is not UTF-8, so a NUL escape stands in
// for one there.
func poisonEvent(id string, n int, anyBytes bool) poison {
	head := `{"activity":"` + activity + `","instance":"` + id + `",`
	data := func(items string) []byte { return []byte(head + `"kind":"update","data":{` + items + `}}`) }
	switch n % 11 {
	case 0:
		return poison{[]byte(head + `"kind":"explode"}`), "kind", ""}
	case 1:
		return poison{data(`"x":{"nested":1}`), "nested", ""}
	case 2:
		return poison{[]byte(head + `"kind":"begin",`), "truncated", ""}
	case 3:
		return poison{[]byte(head + `"kind":"begin","time":"yesterday"}`), "time", ""}
	case 4: // well formed, but refused by the deployed definition
		return poison{data(`"seq":"not a number"`), "definition", "seq"}
	// Values that PostgreSQL refuses as data (SQLSTATE class 22), or
	// SQLite stores other than sent: refused where events are decoded.
	case 5:
		return poison{data(`"seq":1e200000`), "numeric-range", "is beyond ±"}
	case 6:
		return poison{data(`"e1":-1e400`), "float-range", "is beyond ±"}
	case 7:
		return poison{data(`"e2":0.0e-20000`), "numeric-scale", "digits after the decimal point"}
	case 8:
		if anyBytes {
			return poison{data(`"e3":"not ` + "\xff" + ` UTF-8"`), "not-utf8", "valid UTF-8"}
		}
		fallthrough
	case 9:
		return poison{data(`"e4":"a\u0000b"`), "nul", "NUL character"}
	}
	// A value only the store refuses (storeRefusal): the session must
	// find it in its batch and quarantine it alone.
	return poison{data(`"seq":` + fmt.Sprint(refusedSeq)), "store-refused", "the store refused the event: "}
}

// refusedSeq is a "seq" the deployed definition takes (an integer) and
// the store refuses (storeRefusal): no workload event comes near it.
const refusedSeq = 40000

// storeRefusal makes the store refuse, as data, an instance whose item seq
// is beyond a smallint, as a typed column would: on PostgreSQL a cast
// (SQLSTATE 22003), on SQLite an INTEGER PRIMARY KEY that is given text
// (SQLITE_MISMATCH). It stands for a value class that event.Decode does
// not know, which only the store refuses.
func storeRefusal(ctx context.Context, driver, storeURL string) error {
	switch driver {
	case "postgres":
		conn, err := pgx.Connect(ctx, storeURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `
			CREATE FUNCTION chaos_seq_is_smallint() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				PERFORM (NEW.items -> 'seq' ->> 'v')::numeric::smallint;
				RETURN NEW;
			END $$;
			CREATE TRIGGER chaos_seq_is_smallint BEFORE INSERT OR UPDATE ON bam_instances
				FOR EACH ROW EXECUTE FUNCTION chaos_seq_is_smallint()`)
		return err
	case "sqlite":
		db, err := sql.Open("sqlite", strings.TrimPrefix(storeURL, "sqlite:"))
		if err != nil {
			return err
		}
		defer db.Close()
		for _, stmt := range []string{
			`CREATE TABLE chaos_smallint (v INTEGER PRIMARY KEY)`,
			`CREATE TRIGGER chaos_seq_is_smallint BEFORE INSERT ON bam_instances
				WHEN json_extract(NEW.items, '$.seq.v') > 32767
				BEGIN INSERT INTO chaos_smallint (v) VALUES ('out of range'); END`,
		} {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("no store refusal for driver %s", driver)
}

// runBufferWriter appends batches to a buffer source through st until ctx
// ends. A batch the store acknowledged is recorded as acknowledged; one
// whose append failed as of unknown outcome (the commit may have landed),
// and the writer backs off.
func runBufferWriter(ctx context.Context, w *writer, st store.Store, every time.Duration, instances int) {
	for ctx.Err() == nil {
		evs, payloads := w.batch(instances)
		buf := make([]store.BufferEvent, len(evs))
		for i := range evs {
			buf[i] = store.BufferEvent{Partition: event.Partition(evs[i].PartitionKey(), w.src.Partitions), Payload: payloads[i]}
		}
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := st.AppendBuffer(actx, w.src.Name, buf)
		cancel()
		for i := range evs {
			evs[i].Acked = err == nil
		}
		w.hist.wrote(evs)
		pause := w.load.pause(every)
		if err != nil {
			pause = 250 * time.Millisecond
		}
		sleepCtx(ctx, pause)
	}
}

// runOutboxWriter inserts batches into an outbox table in transactions of
// its own, as an application would; now and then it holds a transaction
// open for seconds while other writers commit, so that ids commit out of
// order. A failed commit is of unknown outcome; the writer reconnects.
func runOutboxWriter(ctx context.Context, w *writer, dsn, table string, every time.Duration, instances int, logf func(string, ...any)) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	insert := "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " (instance_id, event) SELECT * FROM unnest($1::text[], $2::text[])"
	for ctx.Err() == nil {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, dsn)
			cancel()
			if err != nil {
				sleepCtx(ctx, 250*time.Millisecond)
				continue
			}
			conn = c
		}
		evs, payloads := w.batch(instances)
		ids := make([]string, len(evs))
		texts := make([]string, len(evs))
		for i := range evs {
			ids[i], texts[i] = evs[i].PartitionKey(), string(payloads[i])
		}
		hold := time.Duration(0)
		if w.rng.Float64() < 0.15 {
			hold = time.Duration(500+w.rng.IntN(2500)) * time.Millisecond
		}
		err := outboxTx(conn, insert, ids, texts, hold)
		for i := range evs {
			evs[i].Acked = err == nil
		}
		w.hist.wrote(evs)
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			sleepCtx(ctx, 250*time.Millisecond)
			continue
		}
		sleepCtx(ctx, w.load.pause(every))
	}
}

// outboxTx writes one batch in one transaction, held open for hold before
// it commits. It does not stop for the run's end: a transaction begun is
// finished, so that its outcome is known.
func outboxTx(conn *pgx.Conn, insert string, ids, texts []string, hold time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), hold+10*time.Second)
	defer cancel()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, insert, ids, texts); err != nil {
		return err
	}
	time.Sleep(hold)
	return tx.Commit(ctx)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
