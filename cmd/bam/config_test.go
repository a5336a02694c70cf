package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestConfigSetShowUnset sets, shows and unsets pool-wide settings, and
// refuses an unknown name, a value that does not parse and one that
// breaks a rule with the pool's other settings.
func TestConfigSetShowUnset(t *testing.T) {
	b := migrated(t)
	if r := b.ok("config", "set", "max-event-size", "65536"); !strings.Contains(r.stdout, "max-event-size = 65536 for the pool (was 262144); running nodes apply it within seconds") {
		t.Errorf("set: %q", r.stdout)
	}
	if r := b.ok("config", "set", "lease-ttl", "6000ms"); !strings.Contains(r.stdout, "lease-ttl = 6s for the pool (was 3s); each node applies it at its next start") {
		t.Errorf("set: %q", r.stdout)
	}
	b.fails(exitUsage, "", []string{"config", "set", "lease-tll", "5s"}, `no such pool-wide setting: "lease-tll" (did you mean lease-ttl?)`)
	b.fails(exitUsage, "", []string{"config", "set", "max-moves", "many"}, `max-moves "many": not a whole number of sessions`)
	b.fails(exitUsage, "", []string{"config", "set", "max-moves", "-1"}, "a value that starts with a dash, such as -1, goes after --, which ends the flags: bam config set -- NAME VALUE")
	b.fails(exitUsage, "", []string{"config", "set", "--", "max-moves", "-1"}, "max-moves -1 refused: max-moves must be positive") // read as a value
	// With lease-ttl 6s and renew-interval 1s, the margin must be under 5s.
	b.fails(exitUsage, "", []string{"config", "set", "safety-margin", "5s"}, "safety-margin 5s refused: safety-margin 5s must be less than lease TTL − renew interval (5s)")
	b.ok("config", "set", "safety-margin", "4s")
	b.fails(exitError, "", []string{"config", "unset", "lease-ttl"}, "lease-ttl back to its default 3s refused: safety-margin 4s must be less than lease TTL − renew interval (2s); change that setting first")

	r := b.ok("config", "show")
	for _, want := range []string{"SETTING", "SET BY", "APPLIES"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[1:]
	}
	if got := rows["lease-ttl"]; len(got) != 6 || got[0] != "6s" || got[1] != "set" || !strings.Contains(got[2], "@") || got[4]+" "+got[5] != "next start" {
		t.Errorf("lease-ttl row = %q", got)
	}
	if got := rows["alert-interval"]; len(got) != 3 || got[0] != "10s" || got[1] != "default" || got[2] != "live" {
		t.Errorf("alert-interval row = %q", got)
	}

	var shown []poolSettingJSON
	if err := json.Unmarshal([]byte(b.ok("config", "show", "--json").stdout), &shown); err != nil {
		t.Fatal(err)
	}
	byName := map[string]poolSettingJSON{}
	for _, s := range shown {
		byName[s.Name] = s
	}
	if s := byName["max-event-size"]; !s.Set || s.Value != "65536" || s.Default != "262144" || s.Unit != "bytes" || !s.Live || s.SetAt == nil || !strings.Contains(s.SetBy, "@") {
		t.Errorf("max-event-size = %+v", s)
	}
	if s := byName["require-definitions"]; s.Set || s.Value != "false" || s.Kind != "boolean" {
		t.Errorf("require-definitions = %+v", s)
	}

	b.ok("config", "unset", "max-event-size")
	b.fails(exitError, "", []string{"config", "unset", "max-event-size"}, "max-event-size is not set for the pool; it has its default, 262144")
	b.fails(exitUsage, "", []string{"config", "show", "--lease-ttl", "5s"}, "--lease-ttl: bam serve's flags only go with --effective")

	// Each change is in the audit log, with its old and new value.
	audit := b.audit()
	var got []string
	for _, e := range audit {
		got = append(got, e.Action+" "+e.Target+" "+e.Detail)
	}
	want := []string{"config unset max-event-size 262144 (was 65536)", "config set safety-margin 4s (was 500ms)",
		"config set lease-ttl 6s (was 3s)", "config set max-event-size 65536 (was 262144)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit log = %q, want %q", got, want)
	}
}

// effective runs bam config show --effective --json and returns each
// value and its origin, "VALUE ORIGIN".
func (b *bench) effective(args ...string) map[string]string {
	b.t.Helper()
	var got []effectiveJSON
	r := b.ok(append([]string{"config", "show", "--effective", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		b.t.Fatalf("%v: %s", err, r.stdout)
	}
	out := map[string]string{}
	for _, e := range got {
		out[e.Name] = e.Value + " " + e.Origin
	}
	return out
}

// TestConfigPrecedence: flag > environment > file > pool setting >
// default, each level over the next.
func TestConfigPrecedence(t *testing.T) {
	b := migrated(t)
	file := filepath.Join(b.dir, "bam.yaml")
	if err := os.WriteFile(file, []byte("max-moves: 6\nbatch-size: 600\nhttp: 127.0.0.1:8481\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.ok("config", "set", "max-moves", "5")
	b.ok("config", "set", "balance-interval", "2s")
	b.env["BAM_MAX_MOVES"] = "7"
	b.env["BAM_ALERT_INTERVAL"] = "1m"

	got := b.effective("--config", file, "--max-moves", "8")
	want := map[string]string{
		"max-moves":        "8 flag",
		"alert-interval":   "1m0s env",
		"batch-size":       "600 file",
		"http":             "127.0.0.1:8481 file",
		"balance-interval": "2s pool",
		"lease-ttl":        "3s default",
		"name":             " default",
	}
	check := func(got, want map[string]string) {
		t.Helper()
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s = %q, want %q", name, got[name], w)
			}
		}
	}
	check(got, want)
	check(b.effective("--config", file), map[string]string{"max-moves": "7 env"})
	delete(b.env, "BAM_MAX_MOVES")
	check(b.effective("--config", file), map[string]string{"max-moves": "6 file"})
	b.env["BAM_CONFIG"] = file // the file named by the environment
	check(b.effective(), map[string]string{"max-moves": "6 file"})
	delete(b.env, "BAM_CONFIG")
	check(b.effective(), map[string]string{"max-moves": "5 pool", "batch-size": "1000 default"})
	b.ok("config", "unset", "max-moves")
	check(b.effective(), map[string]string{"max-moves": "32 default"})
}

// A config file with a key that is no flag, or a value a flag refuses,
// is refused naming it; so is a variable.
func TestConfigFileAndEnvironmentRefusals(t *testing.T) {
	b := migrated(t)
	bad := filepath.Join(b.dir, "bad.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("lease-tll: 5s\n")
	b.fails(exitUsage, "", []string{"status", "--config", bad}, `unknown key "lease-tll"`, "did you mean lease-ttl?")
	write("lease-ttl: soon\n")
	b.fails(exitUsage, "", []string{"status", "--config", bad}, "key lease-ttl: soon", `invalid argument "soon"`)
	write("serve:\n  lease-ttl: 5s\n")
	b.fails(exitUsage, "", []string{"status", "--config", bad}, `unknown key "serve"`)
	// A confirmation must be typed: the file's key is refused as such,
	// not as a flag no command has (bam deploy --force exists).
	write("force: true\n")
	r := b.fails(exitUsage, "", []string{"status", "--config", bad}, `key "force": --force confirms what cannot be undone, so it is never read from the environment or a config file: type it on the command line`)
	if strings.Contains(r.stderr, "no bam command has") {
		t.Errorf("a confirmation key is called unknown: %s", r.stderr)
	}
	b.fails(exitUsage, "", []string{"status", "--config", filepath.Join(b.dir, "none.yaml")}, "--config", "no such file")
	b.env["BAM_LEASE_TTL"] = "soon"
	b.fails(exitUsage, "", []string{"status"}, "BAM_LEASE_TTL=soon")
}

// bam config show --effective never shows the store's password, from a
// flag, the environment or a file.
func TestConfigShowHidesTheStorePassword(t *testing.T) {
	url := testpg.NewDatabase(t) // trust auth: any password opens it
	withPassword := strings.Replace(url, "postgres://", "postgres://bam:s3cret-pw@", 1)
	if strings.Count(withPassword, "@") != 1 {
		withPassword = strings.Replace(url, "@", ":s3cret-pw@", 1)
	}
	b := &bench{t: t, dir: t.TempDir(), url: withPassword, env: map[string]string{}}
	b.ok("migrate")
	file := filepath.Join(b.dir, "bam.yaml")
	if err := os.WriteFile(file, []byte("store: "+withPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "show", "--effective"}, {"config", "show", "--effective", "--json"}} {
		r := b.ok(args...)
		if strings.Contains(r.stdout+r.stderr, "s3cret-pw") || !strings.Contains(r.stdout, "xxxxx") {
			t.Errorf("bam %s shows the password or no redacted URL:\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
		}
	}
	// The same from the file and the environment, without --store.
	var out, errOut syncBuffer
	for _, env := range []map[string]string{{"BAM_CONFIG": file}, {"BAM_STORE": withPassword}} {
		code := run(t.Context(), []string{"config", "show", "--effective"}, strings.NewReader(""), &out, &errOut, environOf(env))
		if code != 0 || strings.Contains(out.String()+errOut.String(), "s3cret-pw") {
			t.Errorf("with %v: exit %d, shows the password or fails:\n%s%s", env, code, out.String(), errOut.String())
		}
	}
}

// Every pool-wide setting is a flag of bam serve with the same default,
// so that a pool setting fills in exactly what the flag would, and
// bam serve --help tells the truth about the defaults.
func TestPoolSettingsAreServeFlags(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	fs := a.serveCommand().Flags()
	for _, s := range settings.All() {
		f := fs.Lookup(s.Name)
		if f == nil {
			t.Errorf("pool setting %s is no flag of bam serve", s.Name)
			continue
		}
		v := settings.Defaults()
		if err := s.Set(&v, f.DefValue); err != nil || s.Get(v) != s.Default() {
			t.Errorf("%s: bam serve's default %q, the setting's %q (%v)", s.Name, f.DefValue, s.Default(), err)
		}
	}
}

// TestOperatorCommandsTakeThePoolsLeaseTTL: bam status --check and the
// operator commands judge nodes and sessions by the pool's lease-ttl when
// no flag, variable or file gives one (status --check used the built-in
// 3s whatever the pool's).
func TestOperatorCommandsTakeThePoolsLeaseTTL(t *testing.T) {
	b := migrated(t)
	b.ok("config", "set", "renew-interval", "100ms")
	b.ok("config", "set", "safety-margin", "50ms")
	b.ok("config", "set", "lease-ttl", "400ms")
	b.ok("source", "add", "idle", "--kind", "buffer", "--partitions", "1")
	r := b.run("", "status", "--check")
	if r.code != exitError || !strings.Contains(r.stdout, "unowned idle/0: no live owner at two reads 400ms apart") || !strings.Contains(r.stdout, "no node runs (is any node running?)") {
		t.Errorf("bam status --check: exit %d, want 1 and the pool's 400ms:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := b.run("", "status", "--check", "--lease-ttl", "200ms"); !strings.Contains(r.stdout, "two reads 200ms apart") {
		t.Errorf("bam status --check --lease-ttl 200ms: the flag does not win:\n%s%s", r.stdout, r.stderr)
	}
}

// TestEnvironmentWarnings: a confirmation flag's variable (BAM_YES) and a
// variable a typo away from a flag's (BAM_LEASE_TLL) are ignored with a
// warning on stderr, where they were silently ignored before; the
// variables bam, its tests and tools read on purpose, and others far from
// every flag's (an alert's secret_env), are not warned about.
func TestEnvironmentWarnings(t *testing.T) {
	b := migrated(t)
	b.env = map[string]string{"BAM_STORE": b.url, "BAM_LEASE_TTL": "3s", "BAM_MAX_EVENT_SIZE": "1000"}
	for _, name := range []string{"BAM_SMTP_PASSWORD", "BAM_TEST_PG", "BAM_TEST_SEED", "BAM_TEST_RUN_AS_BAM",
		"BAM_BENCH_REPS", "BAM_BENCH_BAM", "BAM_BENCH_VARIANTS", "BAM_DOCS_STATE", "BAM_E2E_ALERT_SECRET", "BAM_CHAOS_ALERT_SECRET",
		"BAM_SQLITE_PATH", "BAM_PORTAL_SCREENSHOTS", "BAM_CHROMIUM", "BAM_OPS_WEBHOOK_SECRET", "BAM_OPS_SECRET", "BAM_VERSION", "BAM_HELP", "BAM_HOME"} {
		b.env[name] = "1"
	}
	if r := b.ok("status"); strings.Contains(r.stderr, "warning") {
		t.Errorf("bam warns about variables it reads on purpose, or far from every flag's:\n%s", r.stderr)
	}

	b.env["BAM_YES"] = "1"
	b.env["BAM_DROP_UNAPPLIED"] = "true"
	b.env["BAM_LEASE_TLL"] = "5s"
	r := b.ok("source", "list")
	for _, want := range []string{
		"bam: warning: BAM_YES is ignored: --yes confirms what cannot be undone, so it is never read from the environment or a config file: type it on the command line",
		"bam: warning: BAM_DROP_UNAPPLIED is ignored: --drop-unapplied confirms",
		"bam: warning: BAM_LEASE_TLL is ignored: no bam command has a flag it gives (did you mean BAM_LEASE_TTL?)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "warning"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, r.stderr)
	}
}
