// Package cli is baton's command line: thin cobra commands over the
// engine, the store and the artifact store.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/store"
)

// Exit codes of the public contract.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitError carries an exit code with a message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks bad usage or invalid input (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed marks an action that ran and failed (exit 1) without a message of
// its own: the command has already said what happened.
var errSilentFail = &exitError{code: exitFailed, err: errors.New("")}

type app struct {
	in       io.Reader
	out, err io.Writer
	homeDir  string
	db       string
	output   string
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{in: stdin, out: stdout, err: stderr}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// One mapping from an error's kind to the exit code, shared with the
	// API's statuses (package fault); a command may still choose its own.
	code := fault.ExitCode(err)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case isCobraUsage(err):
		code = exitUsage
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "baton: %s\n", msg)
	}
	return code
}

// isCobraUsage recognizes cobra's own argument errors, which it returns
// as plain errors.
func isCobraUsage(err error) bool {
	var u *usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "required flag(s) ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "baton",
		Short:         "Flows, signals, features, models and experiments in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case "", "table", "json":
				return nil
			}
			return usageErr("-o %q: use -o json or -o table", a.output)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.homeDir, "home", "", "baton home folder (default $BATON_HOME, else ./.baton)")
	pf.StringVar(&a.db, "db", "", "store DSN: sqlite://PATH (default $BATON_DB, else HOME/baton.db)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(a.demoCmd(), a.runCmd(), a.resumeCmd(), a.showCmd(), a.runsCmd(), a.artifactCmd(), a.logsCmd(),
		a.flowCmd(), a.versionCmd(), a.serverCmd(), a.signalCmd(), a.lineageCmd(), a.tokenCmd(), a.loginCmd(), a.cancelCmd(),
		a.backfillCmd(), a.workerCmd(), a.benchCmd(), a.benchWorkerCmd(), a.driftCmd(), a.featureCmd(), a.modelCmd(), a.endpointCmd(), a.rolloutCmd(), a.predictCmd(), a.canaryCmd(), a.expCmd(), a.monitorCmd(), a.docsCmd(), a.recCmd(), a.banditCmd(), a.searchCmd(), a.qualityCmd())
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes cobra's positional-argument errors usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// env is an opened home.
type env struct {
	home  home.Home
	st    store.Store
	blobs *artifact.Store
}

func (e *env) Close() {
	if e.blobs != nil {
		e.blobs.Close()
	}
	if e.st != nil {
		e.st.Close()
	}
}

func (a *app) open(ctx context.Context, withBlobs bool) (*env, error) {
	h, err := home.Resolve(a.homeDir, a.db)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	st, err := h.OpenStore(ctx)
	if err != nil {
		return nil, usageErr("open store: %v", err)
	}
	e := &env{home: h, st: st}
	if withBlobs {
		if e.blobs, err = h.OpenArtifacts(ctx); err != nil {
			e.Close()
			return nil, usageErr("open artifacts: %v", err)
		}
	}
	return e, nil
}

func (a *app) json() bool { return a.output == "json" }

// An empty list prints as [], never null, whichever command and however
// the list was made (a nil slice encodes as null): scripts index and
// iterate the answer without a null check.
func (a *app) printJSON(v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printApplied prints what an apply command stored: JSON, or a line each.
func printApplied[O any](a *app, out []O, line func(O) string) error {
	if a.json() {
		return a.printJSON(out)
	}
	for _, o := range out {
		fmt.Fprintln(a.out, line(o))
	}
	return nil
}

// applyState says whether an apply changed a definition.
func applyState(changed bool, word string) string {
	if changed {
		return word
	}
	return "unchanged"
}

// notFound turns a missing record into an exit-1 error with its message.
func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, artifact.ErrNotFound) {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print baton's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if a.json() {
				return a.printJSON(map[string]string{"version": Version})
			}
			fmt.Fprintln(a.out, "baton", Version)
			return nil
		},
	}
}

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"
