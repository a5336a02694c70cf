package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/suggest"
)

// Every flag of every command can also come from the environment and from
// a config file (docs/OPERATIONS.md, "Configuration"):
//
//	flag  >  BAM_<FLAG> (BAM_LEASE_TTL for --lease-ttl)  >  --config FILE's key  >  pool setting (bam serve, and the commands that call poolDefaults)  >  default
//
// The file is YAML, one key per flag, by the flag's name; a key applies to
// every command that has that flag, and a key that is no flag of any
// command is refused. The flags that confirm what cannot be undone (--yes,
// --force, --drop-data, --drop-unapplied) are typed or nothing. The values are set through the flags themselves, so
// they are checked exactly as a command line is. What gave each flag its
// value is kept in app.origins, for bam serve's pool settings and bam
// config show --effective.

// configEnv names the file when --config is not given.
const configEnv = "BAM_CONFIG"

// envName is the environment variable of a flag: BAM_ and its name in
// capitals, dashes as underscores.
func envName(flag string) string {
	return "BAM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvAndFile gives each flag of cmd that its command line left
// alone the value of its environment variable, or else of the config
// file's key, and records where each came from.
func (a *app) applyEnvAndFile(cmd *cobra.Command) error {
	a.origins = map[string]settings.Origin{}
	file, err := a.readConfigFile(cmd.Root())
	if err != nil {
		return err
	}
	var errs []error
	fs := cmd.Flags()
	fs.VisitAll(func(f *pflag.Flag) {
		switch {
		case f.Changed:
			a.origins[f.Name] = settings.FromFlag
		case typedOnly[f.Name]: // warnAboutEnvironment says so
		case a.getenv(envName(f.Name)) != "":
			// Set, like a command line, marks the flag given: commands
			// that check a flag's presence see it.
			if err := fs.Set(f.Name, a.getenv(envName(f.Name))); err != nil {
				errs = append(errs, usageErrorf("%s=%s: %w", envName(f.Name), shownValue(f.Name, a.getenv(envName(f.Name))), err))
			}
			a.origins[f.Name] = settings.FromEnv
		default:
			v, ok := file[f.Name]
			if !ok {
				return
			}
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, usageErrorf("--config %s: key %s: %s: %w", a.configFile, f.Name, shownValue(f.Name, v), err))
			}
			a.origins[f.Name] = settings.FromFile
		}
	})
	a.warnAboutEnvironment(cmd.Root())
	return errors.Join(errs...)
}

// typedOnly are the flags that no variable or file may give: those
// cobra adds, --config itself, and the ones that confirm what cannot be
// undone (confirmsUndoable), which must be typed for each command.
var typedOnly = map[string]bool{
	"help": true, "version": true, "config": true,
	"yes": true, "force": true, "drop-data": true, "drop-unapplied": true,
}

// confirmsUndoable reports whether flag confirms what cannot be undone.
func confirmsUndoable(flag string) bool {
	return flag == "yes" || flag == "force" || flag == "drop-data" || flag == "drop-unapplied"
}

// notTypedWhy says why a confirmation flag given by a variable or a file
// key is not taken, and what to do instead.
func notTypedWhy(flag string) string {
	return fmt.Sprintf("--%s confirms what cannot be undone, so it is never read from the environment or a config file: type it on the command line, for each command", flag)
}

// readOnPurpose are the BAM_ variables that bam, its tests and its tools
// read besides the flags' (exactly, or by prefix): never misspellings.
var readOnPurpose = []string{
	configEnv, "BAM_SMTP_PASSWORD", // bam
	"BAM_HELP", "BAM_VERSION", // typedOnly, and common names of a deployment's own
	"BAM_TEST_", "BAM_BENCH_", "BAM_DOCS_", "BAM_E2E_", "BAM_CHAOS_", "BAM_SQLITE_", "BAM_PORTAL_", "BAM_CHROMIUM", // tests and tools
}

// warnAboutEnvironment warns on stderr about the BAM_ variables that bam
// ignores though they were likely meant for it: a confirmation flag's
// (typed only), and one a typo away from a flag's (BAM_LEASE_TLL). A
// BAM_ variable far from every flag's is left alone: the webhooks'
// secret_env may name one (BAM_OPS_WEBHOOK_SECRET), as may a deployment's
// own scripts.
func (a *app) warnAboutEnvironment(root *cobra.Command) {
	var vars, bare []string // BAM_LEASE_TTL, and LEASE_TTL to suggest from
	for _, f := range allFlagNames(root) {
		vars = append(vars, envName(f))
		bare = append(bare, strings.TrimPrefix(envName(f), "BAM_"))
	}
	for _, kv := range a.environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "BAM_") || value == "" || slices.Contains(vars, name) ||
			slices.ContainsFunc(readOnPurpose, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "BAM_"), "_", "-"))
		if confirmsUndoable(flag) {
			fmt.Fprintf(a.stderr, "bam: warning: %s is ignored: %s\n", name, notTypedWhy(flag))
		} else if near := suggest.Closest(strings.TrimPrefix(name, "BAM_"), bare); near != "" {
			// Without the common BAM_, short names stay far from each
			// other (BAM_HOME is no misspelt BAM_NAME).
			fmt.Fprintf(a.stderr, "bam: warning: %s is ignored: no bam command has a flag it gives (did you mean BAM_%s?)\n", name, near)
		}
	}
}

// origin says where the value of a flag of the command being run came
// from.
func (a *app) origin(flag string) settings.Origin {
	if o, ok := a.origins[flag]; ok {
		return o
	}
	return settings.FromDefault
}

// shownValue is a value fit for an error or a log: a store URL or a
// source's DSN without its password.
func shownValue(flag, v string) string {
	if flag == "store" || flag == "dsn" {
		return storeurl.Redact(v)
	}
	return v
}

// readConfigFile reads --config FILE (or BAM_CONFIG's): each key a flag's
// name, each value a scalar or a list (for a flag that takes several). No
// file, no values.
func (a *app) readConfigFile(root *cobra.Command) (map[string]string, error) {
	if a.configFile == "" {
		a.configFile = a.getenv(configEnv)
	}
	if a.configFile == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(a.configFile)
	if err != nil {
		return nil, usageErrorf("--config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, usageErrorf("--config %s: not a YAML mapping of flag names to values: %w", a.configFile, err)
	}
	known := allFlagNames(root)
	out := make(map[string]string, len(doc))
	for key, v := range doc {
		if confirmsUndoable(key) {
			return nil, usageErrorf("--config %s: key %q: %s", a.configFile, key, notTypedWhy(key))
		}
		if !slices.Contains(known, key) {
			return nil, usageErrorf("--config %s: unknown key %q: no bam command has a flag --%s%s", a.configFile, key, key, suggest.DidYouMean(key, known))
		}
		switch v := v.(type) {
		case map[string]any:
			return nil, usageErrorf("--config %s: key %s: want a value, not a mapping", a.configFile, key)
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[key] = strings.Join(parts, ",")
		case nil:
			out[key] = ""
		default:
			out[key] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// allFlagNames returns the name of every flag of every command under
// root that a file may give (not typedOnly).
func allFlagNames(root *cobra.Command) []string {
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { seen[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	names := make([]string, 0, len(seen))
	for n := range seen {
		if !typedOnly[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
