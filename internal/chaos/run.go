package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/faultproxy"
	"github.com/bam-dev/bam/internal/pgserver"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// Config says what a run does. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	Duration   time.Duration // how long faults are injected and events written
	Nodes      int           // `bam serve` processes in the pool
	Sources    int           // sources, alternating buffer and pg-outbox (pg-outbox needs PostgreSQL)
	Partitions int           // partitions per source
	Writers    int           // concurrent writers, spread over the sources
	Instances  int           // instances each writer keeps in flight
	WriteEvery time.Duration // a writer's pause between batches
	Poison     float64       // probability that a batch carries a poison event
	FaultEvery time.Duration // mean time between faults
	Faults     []string      // kinds of fault to inject (AllFaults)
	Seed       uint64        // the random source of faults and workload
	// Store is "postgres" (a server the harness starts itself, which it may
	// restart), "sqlite", or a postgres:// URL of a server the harness does
	// not own: it creates databases of its own there and never restarts it.
	Store        string
	PGBin        string        // directory of initdb and pg_ctl (PostgreSQL 15)
	Bam          string        // the bam binary; empty: built from this module
	BuildTags    string        // build tags for the bam binary it builds
	LeaseTTL     time.Duration // the nodes' --lease-ttl
	DrainTimeout time.Duration // how long the pool may take to drain after the faults
	Dir          string        // where the run keeps its files; empty: a temporary directory
	Keep         bool          // keep Dir even when the run passes
	Log          io.Writer     // progress lines; nil: none
}

// DefaultConfig is a few minutes of every fault on a PostgreSQL server of
// the harness's own.
func DefaultConfig() Config {
	return Config{
		Duration: 2 * time.Minute, Nodes: 3, Sources: 2, Partitions: 4,
		Writers: 4, Instances: 6, WriteEvery: 20 * time.Millisecond, Poison: 0.02,
		FaultEvery: 3 * time.Second, Faults: AllFaults, Seed: 1, Store: "postgres",
		PGBin: pgserver.DefaultBin(), LeaseTTL: 3 * time.Second, DrainTimeout: 2 * time.Minute,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Duration = cmp.Or(c.Duration, d.Duration)
	c.Nodes = cmp.Or(c.Nodes, d.Nodes)
	c.Sources = cmp.Or(c.Sources, d.Sources)
	c.Partitions = cmp.Or(c.Partitions, d.Partitions)
	c.Writers = cmp.Or(c.Writers, d.Writers)
	c.Instances = cmp.Or(c.Instances, d.Instances)
	c.WriteEvery = cmp.Or(c.WriteEvery, d.WriteEvery)
	c.FaultEvery = cmp.Or(c.FaultEvery, d.FaultEvery)
	if c.Faults == nil {
		c.Faults = d.Faults
	}
	c.Store = cmp.Or(c.Store, d.Store)
	c.PGBin = cmp.Or(c.PGBin, d.PGBin)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, d.LeaseTTL)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, d.DrainTimeout)
	return c
}

func (c Config) validate() error {
	switch {
	case c.Nodes < 1:
		return errors.New("nodes: at least 1")
	case c.Sources < 1:
		return errors.New("sources: at least 1")
	case c.Partitions < 1:
		return errors.New("partitions: at least 1")
	case c.Writers < c.Sources:
		return fmt.Errorf("writers: at least one per source (%d sources, %d writers)", c.Sources, c.Writers)
	case c.Poison < 0 || c.Poison > 1:
		return errors.New("poison: a probability, between 0 and 1")
	}
	for _, f := range c.Faults {
		if !validFault(f) {
			return fmt.Errorf("fault %q: unknown (known: %s)", f, strings.Join(AllFaults, ", "))
		}
	}
	if c.Store != "postgres" && c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return fmt.Errorf("store %q: use postgres, sqlite or a postgres:// URL", c.Store)
	}
	return nil
}

// Result is what a run found.
type Result struct {
	Report check.Report
	Seed   uint64
	Dir    string         // the run's files (node logs, the server's log); removed when the run passed, unless Keep
	Lines  map[string]int // node log lines by message, for a reader of the report
}

// harness holds a run's parts.
type harness struct {
	cfg          Config
	dir          string
	start        time.Time
	server       *pgserver.Server // nil unless the harness started PostgreSQL
	pgAdmin      string           // URL of the PostgreSQL server's maintenance database, direct
	dbPrefix     string           // databases of this run, on an external server
	storeURL     string           // direct
	storeProxied bool
	outboxURL    string            // direct
	outboxProxy  *faultproxy.Proxy // nil without PostgreSQL
	st           store.Store       // direct: writers and observers
	sources      []store.Source
	bam          string
	nodes        []*nodeProc
	claims       *claimLog
	proxiesMu    sync.Mutex // newNode also runs in fault goroutines (join-leave)
	proxies      []*faultproxy.Proxy
	hist         *history
	load         load
	alerts       *receiver // the workload's alert's webhook receiver
	logMu        sync.Mutex
}

func (h *harness) logf(format string, args ...any) {
	if h.cfg.Log == nil {
		return
	}
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, "%7.1fs  %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the harness once: setup, faults and writes for cfg.Duration,
// heal, drain, check. An error means the run could not be carried out (a
// setup failure, a pool that never drained); violations of the promises are
// in the report.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return res, err
	}
	h := &harness{cfg: cfg, start: time.Now(), claims: &claimLog{}, hist: &history{}}
	res.Seed = cfg.Seed
	h.dir = cfg.Dir
	if h.dir == "" {
		if h.dir, err = os.MkdirTemp("", "bam-chaos-"); err != nil {
			return res, err
		}
		// A server run as the postgres user must reach its directory in it.
		if err := os.Chmod(h.dir, 0o755); err != nil {
			return res, err
		}
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return res, err
	}
	res.Dir = h.dir
	defer func() {
		h.teardown()
		if err == nil && res.Report.OK() && !cfg.Keep {
			os.RemoveAll(h.dir)
			res.Dir = ""
		}
	}()
	h.logf("seed %d, %d nodes, %d sources × %d partitions, store %s, faults %s, files in %s",
		cfg.Seed, cfg.Nodes, cfg.Sources, cfg.Partitions, storeurl.Redact(cfg.Store), strings.Join(cfg.Faults, ","), h.dir)
	if err := h.setup(ctx); err != nil {
		return res, err
	}

	// Faults and writes.
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	defer stopRun()
	var writers, observers sync.WaitGroup
	h.startWriters(runCtx, &writers)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	observers.Add(2)
	go func() { defer observers.Done(); h.sampleOwners(obsCtx) }()
	go func() { defer observers.Done(); h.sampleInstances(obsCtx) }()
	in := &injector{h: h, rng: rand.New(rand.NewPCG(cfg.Seed, 1)), busy: map[*nodeProc]bool{}, counts: map[string]int{}}
	in.kinds = h.applicableFaults()
	in.run(runCtx) // returns once every fault is undone

	// Heal.
	writers.Wait()
	end := time.Now()
	h.logf("faults over (%s); writers stopped; healing", formatCounts(in.faults()))
	if k := in.faults()[faultMidBatch]; k > 0 {
		h.logf("%d of %d mid-batch faults left a backend stalled mid-request", in.midRequest, k)
	}
	for _, n := range h.nodes {
		if !n.isRunning() {
			if err := n.start(); err != nil {
				return res, err
			}
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	// Drain.
	if err := h.drain(ctx); err != nil {
		return res, err
	}
	stopObs()
	observers.Wait()

	// Check.
	final, err := h.storeState(ctx)
	if err != nil {
		return res, err
	}
	claims, lines := h.claims.snapshot()
	h.hist.mu.Lock()
	hist := check.History{
		Events: h.hist.events, Snapshots: h.hist.snapshots, Claims: claims, Owners: h.hist.owners,
		Faults: in.faults(), Start: h.start, End: end,
		Struck: in.history(), NodeNames: h.claims.nodeNames(), LeaseTTL: cfg.LeaseTTL,
	}
	h.hist.mu.Unlock()
	res.Report = check.Check(hist, final)
	res.Lines = lines
	return res, nil
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range AllFaults {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// setup starts the store, the proxies, the sources and the nodes.
func (h *harness) setup(ctx context.Context) error {
	cfg := h.cfg
	needPG := cfg.Store != "sqlite" || cfg.Sources > 1
	switch {
	case strings.HasPrefix(cfg.Store, "postgres"):
		if cfg.Store == "postgres" {
			if err := h.startServer(ctx); err != nil {
				return err
			}
		} else {
			h.pgAdmin = cfg.Store
			h.dbPrefix = fmt.Sprintf("bam_chaos_%d_%d_", os.Getpid(), time.Now().UnixNano()%1e6)
		}
		if err := h.createDB(ctx, "store"); err != nil {
			return err
		}
		h.storeURL = h.dbURL(h.pgAddr(), "store")
		h.storeProxied = true
	case cfg.Store == "sqlite":
		h.storeURL = "sqlite:" + filepath.Join(h.dir, "bam.db")
		if needPG {
			if err := h.startServer(ctx); err != nil {
				return fmt.Errorf("pg-outbox sources need PostgreSQL (use --sources 1 for buffer only): %w", err)
			}
		}
	}
	if needPG {
		if err := h.createDB(ctx, "outbox"); err != nil {
			return err
		}
		h.outboxURL = h.dbURL(h.pgAddr(), "outbox")
		p, err := faultproxy.Listen("127.0.0.1:0", h.pgAddr())
		if err != nil {
			return err
		}
		h.outboxProxy = p
		h.proxies = append(h.proxies, p)
	}

	st, err := storeurl.Open(ctx, h.storeURL)
	if err != nil {
		return fmt.Errorf("open the store: %w", err)
	}
	h.st = st
	if _, _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate the store: %w", err)
	}
	// The workload's activity is deployed, typed: every event is checked
	// against it, and one kind of poison event fails only that check. Its
	// alert is delivered to the harness's receiver.
	if h.alerts, err = startReceiver(cfg.Seed); err != nil {
		return err
	}
	if _, err := st.Deploy(ctx, store.DeployRequest{File: workloadDefinition(h.alerts.url), By: "bam-chaos"}); err != nil {
		return fmt.Errorf("deploy the workload's definition: %w", err)
	}
	if _, err := alert.EnsureSession(ctx, st); err != nil {
		return err
	}
	if err := storeRefusal(ctx, st.Driver(), h.storeURL); err != nil {
		return fmt.Errorf("make the store refuse a value: %w", err)
	}
	for i := range cfg.Sources {
		src := store.Source{Name: fmt.Sprintf("buf%d", i+1), Kind: store.KindBuffer, Partitions: cfg.Partitions, Enabled: true}
		if i%2 == 1 {
			src = store.Source{Name: fmt.Sprintf("obx%d", i+1), Kind: store.KindPgOutbox, Partitions: cfg.Partitions, Enabled: true,
				DSN: h.dbURL(h.outboxProxy.Addr(), "outbox"), Table: "outbox_" + fmt.Sprint(i+1)}
			conn, err := pgx.Connect(ctx, h.outboxURL)
			if err != nil {
				return fmt.Errorf("connect to the outbox database: %w", err)
			}
			err = pgoutbox.Install(ctx, conn, src.Table)
			conn.Close(ctx)
			if err != nil {
				return fmt.Errorf("install outbox %s: %w", src.Table, err)
			}
		}
		if err := st.AddSource(ctx, src); err != nil {
			return fmt.Errorf("add source %s: %w", src.Name, err)
		}
		h.sources = append(h.sources, src)
	}

	if h.bam = cfg.Bam; h.bam == "" {
		h.bam = filepath.Join(h.dir, "bam")
		args := []string{"build", "-o", h.bam}
		if cfg.BuildTags != "" {
			args = append(args, "-tags", cfg.BuildTags)
		}
		args = append(args, "github.com/bam-dev/bam/cmd/bam")
		if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("build bam: %v\n%s", err, out)
		}
	}
	for i := range cfg.Nodes {
		n := h.newNode(fmt.Sprintf("n%d", i+1), h.storeProxied)
		if n.proxy == nil && h.storeProxied {
			return errors.New("no proxy for node")
		}
		h.nodes = append(h.nodes, n)
		if err := n.start(); err != nil {
			return err
		}
	}
	h.logf("setup done: %d nodes started", len(h.nodes))
	return nil
}

// newNode prepares a node, behind a proxy of its own when proxied.
func (h *harness) newNode(name string, proxied bool) *nodeProc {
	n := &nodeProc{
		name: name, storeURL: h.storeURL, logPath: filepath.Join(h.dir, name+".log"), bam: h.bam, claims: h.claims,
		extra: []string{"--lease-ttl", h.cfg.LeaseTTL.String(), "--alert-interval", alertInterval.String()},
	}
	if proxied {
		p, err := faultproxy.Listen("127.0.0.1:0", h.pgAddr())
		if err != nil {
			h.logf("proxy for %s: %v; it connects directly", name, err)
			return n
		}
		h.proxiesMu.Lock()
		h.proxies = append(h.proxies, p)
		h.proxiesMu.Unlock()
		n.proxy = p
		n.storeURL = h.dbURL(p.Addr(), "store")
	}
	return n
}

func (h *harness) startServer(ctx context.Context) error {
	s, err := pgserver.Start(ctx, h.cfg.PGBin, filepath.Join(h.dir, "pg"))
	if err != nil {
		return err
	}
	h.server = s
	h.pgAdmin = pgserver.URL(s.Addr(), "postgres")
	return nil
}

// pgAddr is host:port of the PostgreSQL server, direct.
func (h *harness) pgAddr() string {
	if h.server != nil {
		return h.server.Addr()
	}
	u, _ := url.Parse(h.pgAdmin)
	return u.Host
}

// dbURL returns the URL of one of the run's databases at addr.
func (h *harness) dbURL(addr, name string) string {
	if h.server != nil {
		return pgserver.URL(addr, name)
	}
	u, _ := url.Parse(h.pgAdmin)
	u.Host = addr
	u.Path = "/" + h.dbPrefix + name
	return u.String()
}

func (h *harness) createDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, h.pgAdmin)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{h.dbPrefix + name}.Sanitize())
	return err
}

func (h *harness) startWriters(ctx context.Context, wg *sync.WaitGroup) {
	for i := range h.cfg.Writers {
		src := h.sources[i%len(h.sources)]
		w := newWriter(fmt.Sprintf("%s-w%d", src.Name, i+1), src, h.cfg.Seed*1000+uint64(i), h.cfg.Poison, h.hist, &h.load)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if src.Kind == store.KindBuffer {
				runBufferWriter(ctx, w, h.st, h.cfg.WriteEvery, h.cfg.Instances)
			} else {
				runOutboxWriter(ctx, w, h.outboxURL, src.Table, h.cfg.WriteEvery, h.cfg.Instances, h.logf)
			}
		}()
	}
}

// sampleOwners records every session's owner every 100 ms.
func (h *harness) sampleOwners(ctx context.Context) {
	for sleepCtx(ctx, 100*time.Millisecond) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		sessions, err := h.st.Sessions(sctx)
		cancel()
		if err != nil {
			continue // the store is restarting: no evidence either way
		}
		now := time.Now()
		samples := ownerSamples(sessions, now)
		h.hist.mu.Lock()
		h.hist.owners = append(h.hist.owners, samples...)
		h.hist.mu.Unlock()
	}
}

func ownerSamples(sessions []store.SessionRow, at time.Time) []check.OwnerSample {
	out := make([]check.OwnerSample, 0, len(sessions))
	for _, s := range sessions {
		if !s.SourceEnabled {
			continue
		}
		out = append(out, check.OwnerSample{
			At: at, Session: sessionName(s.Source, s.Partition), Owner: s.Owner, Epoch: s.Epoch,
			Live: s.Owner != "" && s.LeaseRemaining > 0,
		})
	}
	return out
}

// sampleInstances reads a few instances written lately, four times a
// second, so that the checker sees their states mid-run.
func (h *harness) sampleInstances(ctx context.Context) {
	rng := rand.New(rand.NewPCG(h.cfg.Seed, 2))
	for sleepCtx(ctx, 250*time.Millisecond) {
		h.hist.mu.Lock()
		var keys []event.Key
		for range 4 {
			if len(h.hist.recent) > 0 {
				keys = append(keys, h.hist.recent[rng.IntN(len(h.hist.recent))])
			}
		}
		h.hist.mu.Unlock()
		for _, k := range keys {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			inst, err := h.st.Instance(sctx, k)
			cancel()
			if err != nil {
				continue
			}
			h.hist.mu.Lock()
			h.hist.snapshots = append(h.hist.snapshots, check.Snapshot{At: time.Now(), Instance: checkInstance(inst)})
			h.hist.mu.Unlock()
		}
	}
}

func checkInstance(in store.Instance) check.Instance {
	return check.Instance{Activity: in.Activity, ID: in.ID, State: string(in.State), Events: in.Events, Data: in.Data}
}

// drain waits until every session is owned under a live lease and its
// source holds nothing after its checkpoint, twice in a row a second apart.
func (h *harness) drain(ctx context.Context) error {
	h.logf("draining")
	readers := map[string]*pgoutbox.Reader{}
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	deadline := time.Now().Add(h.cfg.DrainTimeout)
	calm := 0
	var why string
	for {
		why = h.undrained(ctx, readers)
		if why == "" {
			calm++
		} else {
			calm = 0
		}
		if calm == 2 {
			h.logf("drained")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pool did not drain within %v after the faults: %s (files in %s)", h.cfg.DrainTimeout, why, h.dir)
		}
		if !sleepCtx(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// undrained says why the pool has not drained yet, or "" when it has.
func (h *harness) undrained(ctx context.Context, readers map[string]*pgoutbox.Reader) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sessions, err := h.st.Sessions(ctx)
	if err != nil {
		return "sessions: " + err.Error()
	}
	for _, s := range sessions {
		name := sessionName(s.Source, s.Partition)
		if s.Owner == "" || s.LeaseRemaining <= 0 {
			return name + " has no owner"
		}
		if s.Kind == store.KindAlerts {
			continue // no events: settleAlert waits for its firings
		}
		var backlog int64
		if s.Kind == store.KindBuffer {
			backlog, err = h.st.BufferBacklog(ctx, s.SessionID, s.Checkpoint)
		} else {
			r := readers[s.Source]
			if r == nil {
				src := h.source(s.Source)
				if r, err = pgoutbox.Open(ctx, h.outboxURL, src.Table, src.Partitions); err != nil {
					return "open outbox: " + err.Error()
				}
				readers[s.Source] = r
			}
			backlog, err = r.Backlog(ctx, s.Partition, s.Checkpoint)
		}
		if err != nil {
			return name + " backlog: " + err.Error()
		}
		if backlog > 0 {
			return fmt.Sprintf("%s has %d events to apply", name, backlog)
		}
	}
	return ""
}

func (h *harness) source(name string) store.Source {
	for _, s := range h.sources {
		if s.Name == name {
			return s
		}
	}
	return store.Source{}
}

// readRelations reads the relations of every instance a relate event of
// the history names, on either side (store.Instances leaves them out).
func (h *harness) readRelations(ctx context.Context, s *check.StoreState) error {
	h.hist.mu.Lock()
	named := map[event.Key]bool{}
	for _, e := range h.hist.events {
		if e.Related != "" {
			named[event.Key{Activity: e.Activity, Instance: e.Instance}] = true
			a, id, _ := strings.Cut(e.Related, "/")
			named[event.Key{Activity: a, Instance: id}] = true
		}
	}
	h.hist.mu.Unlock()
	for i := range s.Instances {
		in := &s.Instances[i]
		k := event.Key{Activity: in.Activity, Instance: in.ID}
		if !named[k] {
			continue
		}
		full, err := h.st.Instance(ctx, k)
		if err != nil {
			return fmt.Errorf("read instance %s/%s: %w", k.Activity, k.Instance, err)
		}
		in.Related = make([]string, 0, len(full.Related))
		for _, r := range full.Related {
			in.Related = append(in.Related, r.Activity+"/"+r.Instance)
		}
	}
	return nil
}

// readKeptAside reads, for every continuation whose enable-continuation
// was of unknown outcome, how many events its token keeps aside, not
// linked to an instance (check.StoreState.Pending).
func (h *harness) readKeptAside(ctx context.Context, s *check.StoreState) error {
	h.hist.mu.Lock()
	var unsure []check.Event
	for _, e := range h.hist.events {
		if e.Itemless && e.Token != "" && !e.Acked {
			unsure = append(unsure, e)
		}
	}
	h.hist.mu.Unlock()
	s.Pending = make(map[string]int64, len(unsure))
	for _, e := range unsure {
		c, err := h.st.Continuation(ctx, e.Activity, e.Token)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.Pending[e.Activity+"/"+e.Instance] = 0
		case err != nil:
			return fmt.Errorf("read continuation %s/%s: %w", e.Activity, e.Token, err)
		case c.Instance == "":
			s.Pending[e.Activity+"/"+e.Instance] = c.Pending
		}
	}
	return nil
}

// storeState reads what the checker compares with the history.
func (h *harness) storeState(ctx context.Context) (check.StoreState, error) {
	var s check.StoreState
	after := ""
	for {
		page, err := h.st.Instances(ctx, store.InstanceFilter{Activity: activity, After: after, Limit: 5000})
		if err != nil {
			return s, fmt.Errorf("read instances: %w", err)
		}
		for _, in := range page {
			s.Instances = append(s.Instances, checkInstance(in))
		}
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].ID
	}
	if err := h.readRelations(ctx, &s); err != nil {
		return s, err
	}
	if err := h.readKeptAside(ctx, &s); err != nil {
		return s, err
	}
	for _, src := range h.sources {
		failed, err := h.st.FailedEvents(ctx, src.Name, 1_000_000)
		if err != nil {
			return s, fmt.Errorf("read failed events: %w", err)
		}
		for _, f := range failed {
			s.Failed = append(s.Failed, check.Failed{Source: src.Name, Partition: f.Partition, Reason: f.Reason, Payload: f.Payload})
		}
	}
	sessions, err := h.st.Sessions(ctx)
	if err != nil {
		return s, fmt.Errorf("read sessions: %w", err)
	}
	s.Sessions = ownerSamples(sessions, time.Now())
	var mismatch *store.AggregationMismatchError
	switch err := h.st.VerifyAggregations(ctx); {
	case errors.As(err, &mismatch):
		s.AggregationsDiffer = mismatch.Error()
	case err != nil:
		return s, fmt.Errorf("verify the aggregations: %w", err)
	}
	if s.Alert, err = h.settleAlert(ctx, s.Instances); err != nil {
		return s, err
	}
	return s, nil
}

// teardown stops the nodes, the proxies and the server, and drops the
// databases the run made on a server it does not own.
func (h *harness) teardown() {
	if h.alerts != nil {
		defer h.alerts.close()
	}
	var wg sync.WaitGroup
	for _, n := range h.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.stop(15 * time.Second) }()
	}
	wg.Wait()
	if h.st != nil {
		h.st.Close()
	}
	for _, p := range h.proxies {
		p.Close()
	}
	if h.server != nil {
		if err := h.server.Stop(); err != nil {
			h.logf("stop PostgreSQL: %v", err)
		}
	} else if h.dbPrefix != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, h.pgAdmin); err == nil {
			for _, db := range []string{"store", "outbox"} {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{h.dbPrefix + db}.Sanitize()+" WITH (FORCE)")
			}
			conn.Close(ctx)
		}
	}
}
