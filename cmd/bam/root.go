package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/suggest"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line is wrong
)

// app is one invocation of bam: its streams, environment and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string // KEY=VALUE, as os.Environ gives it
	getenv         func(string) string

	storeURL   string
	logFormat  string
	logLevel   string
	configFile string // --config: flags' values from a YAML file
	log        *slog.Logger
	// origins says where each flag of the command being run got its
	// value, if not from its default (applyEnvAndFile).
	origins map[string]settings.Origin

	// started is set once a command's own code runs: an error before that
	// (flags, arguments) is a usage error.
	started bool
}

// usageError is a wrong command line: bam exits 2 and points at --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run runs bam with args and returns its exit code. main is its only caller
// outside tests.
// environ is the environment, as os.Environ gives it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ, getenv: getenvOf(environ)}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "bam: %s\n", oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) || !a.started {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

// flagUsageError makes a command line's flag error a usage error. A
// negative number such as -1 reads as flags: say how to give it as a
// value (bam config set max-moves -1).
func flagUsageError(cmd *cobra.Command, err error) error {
	var unknown *pflag.NotExistError
	if errors.As(err, &unknown) && unknown.GetSpecifiedShortnames() != "" {
		if _, nerr := strconv.ParseFloat(unknown.GetSpecifiedShortnames(), 64); nerr == nil {
			args := strings.Join(strings.Fields(cmd.Use)[1:], " ")
			return usageErrorf("%w: a value that starts with a dash, such as -%s, goes after --, which ends the flags: %s -- %s",
				err, unknown.GetSpecifiedShortnames(), cmd.CommandPath(), args)
		}
	}
	return &usageError{err}
}

// getenvOf is os.Getenv over environ: the first value of a name wins, as
// in os.Getenv.
func getenvOf(environ []string) func(string) string {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if _, ok := vars[name]; !ok {
			vars[name] = value
		}
	}
	return func(name string) string { return vars[name] }
}

// oneLine keeps an error message on one line, as `bam: message`.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = regexp.MustCompile(`:[ \t]*\n\s*`).ReplaceAllString(s, ": ") // "failed to connect to ...:\n\thost: ..."
	return regexp.MustCompile(`\s*\n\s*`).ReplaceAllString(s, "; ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bam",
		Short: "Business Activity Monitoring event bus",
		Long: `bam moves the business events that applications write to sources (the store's
ingest buffer, an outbox table in their own PostgreSQL) into the activity store,
on a pool of nodes that share the sessions, fail over in seconds and apply each
event exactly once.

Start with:  bam demo`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.applyEnvAndFile(cmd); err != nil {
				return err
			}
			return a.setUp()
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.Version = version()
	root.SetVersionTemplate("bam {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(flagUsageError)

	def := storeurl.Default
	if env := a.getenv("BAM_STORE"); env != "" {
		def = env
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.storeURL, "store", def, "the activity store: postgres://USER@HOST:PORT/DB or sqlite:PATH (env BAM_STORE)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format on stderr: text, or json (durations in seconds)")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&a.configFile, "config", "", "read flags' values from this YAML file, one key per flag name (env "+configEnv+"); a flag or its BAM_<FLAG> variable wins over it")
	if env := a.getenv("BAM_STORE"); env != "" {
		// Show the flag's default without the password the variable may hold.
		root.PersistentFlags().Lookup("store").DefValue = storeurl.Redact(env)
	}

	root.AddCommand(
		a.migrateCommand(),
		a.serveCommand(),
		a.sourceCommand(),
		a.emitCommand(),
		a.instanceCommand(),
		a.aggregateCommand(),
		a.deployCommand(),
		a.activityCommand(),
		a.alertCommand(),
		a.definitionCommand(),
		a.failedCommand(),
		a.statusCommand(),
		a.pauseCommand(),
		a.resumeCommand(),
		a.nodeCommand(),
		a.sessionCommand(),
		a.auditCommand(),
		a.configCommand(),
		a.demoCommand(),
	)
	return root
}

// setUp checks the global flags and builds the logger.
func (a *app) setUp() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usageErrorf("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		opts.ReplaceAttr = durationsInSeconds
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return usageErrorf("--log-format %q: use text or json", a.logFormat)
	}
	return nil
}

// durationsInSeconds writes a duration as seconds, a float ("took":0.125),
// in JSON logs: what log pipelines and Prometheus expect, where slog's JSON
// handler would write Go's nanoseconds. Text logs keep Go's form (125ms),
// for people.
func durationsInSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}

// body wraps a command's own code, so that its errors are told apart from
// usage errors.
func (a *app) body(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return fn(cmd, args)
	}
}

// group returns a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses arguments, naming an unknown subcommand as such.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return usageErrorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), suggest.DidYouMean(args[0], names))
	}
	return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
}

// exactArgs wants one argument per name, and says which are missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageErrorf("%s needs %s", cmd.CommandPath(), strings.Join(names[len(args):], " "))
		case len(args) > len(names):
			return usageErrorf("%s takes %s, got %d arguments", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}
