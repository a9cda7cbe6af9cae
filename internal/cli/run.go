package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/parquet"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/progress"
	"github.com/baton-ml/baton/internal/store"
)

type execFlags struct {
	workers    int
	noProgress bool
}

// addCodeLimit adds --code-limit, the size limit of code snapshots.
func addCodeLimit(cmd *cobra.Command, limit *string) {
	cmd.Flags().StringVar(limit, "code-limit", "",
		"the most a flow's folder may hold for its code snapshot, e.g. 128MiB (default: $BATON_CODE_LIMIT, else 32MiB)")
}

func (f *execFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.workers, "workers", 0, "tasks running at once (default: the number of CPUs)")
	cmd.Flags().BoolVar(&f.noProgress, "no-progress", false, "print no progress, only the result")
}

func (a *app) runCmd() *cobra.Command {
	var params, paramFiles, tags []string
	var ef execFlags
	var codeLimit string
	cmd := &cobra.Command{
		Use:   "run FILE|FLOW",
		Short: "Run a flow in the foreground (registering the file's version if new)",
		Long: `Run a flow file (or a registered flow by name) to its end, printing progress.
Exits 0 if the run succeeded, 1 if it failed or was cancelled, 2 on invalid input.
Ctrl-C cancels the run cleanly (running tasks are stopped and the run is recorded
as cancelled); a second Ctrl-C quits at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := kv.Parse("--param", "NAME=VALUE", params)
			if err != nil {
				return err
			}
			files, err := kv.Parse("--param-file", "NAME=VALUE", paramFiles)
			if err != nil {
				return err
			}
			for _, t := range tags {
				if strings.TrimSpace(t) == "" {
					return usageErr("--tag: a tag may not be empty")
				}
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			fl, parsed, v, err := a.resolveFlow(ctx, e, args[0], codeLimit)
			if err != nil {
				return err
			}
			if err := readParamFiles(fl, given, files); err != nil {
				return err
			}
			resolved, err := fl.ResolveParams(given)
			if err != nil {
				return err // flow.Errors: exit 2, names the param
			}
			a.noteFileParams(resolved)
			if parsed != nil {
				applied, err := catalog.Store(ctx, e.st, []catalog.Parsed{*parsed})
				if err != nil {
					return err
				}
				if v, err = e.st.FlowVersion(ctx, applied[0].Flow, applied[0].Version); err != nil {
					return err
				}
			}
			eng, err := a.engine(e, ef)
			if err != nil {
				return err
			}
			defer eng.Close()
			// The run is claimed for this process: a server never takes
			// a foreground run.
			run, err := e.st.CreateRun(ctx, store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Params: resolved,
				Tags: tags, Trigger: store.TriggerManual, Owner: eng.Owner()})
			if err != nil {
				return err
			}
			return a.executeWith(ctx, e, eng, run, ef)
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "run parameter `NAME=VALUE` (repeatable)")
	cmd.Flags().StringArrayVar(&paramFiles, "param-file", nil,
		"run parameter `NAME=PATH` whose value is the file's content, for values too large for a command line (repeatable)")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag the run (repeatable)")
	addCodeLimit(cmd, &codeLimit)
	ef.add(cmd)
	return cmd
}

// readParamFiles adds the values of --param-file NAME=PATH to given. A
// file's content is the value as --param would take it; for a param that
// is not a string, the whitespace around it (a final newline) is dropped.
func readParamFiles(fl *flow.Flow, given, files map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := files[name]
		if _, dup := given[name]; dup {
			return usageErr("param %s is given with both --param and --param-file: give one", name)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return usageErr("--param-file %s=%s: %v", name, path, err)
		}
		if fi.Size() > flow.MaxParam {
			return usageErr("--param-file %s=%s: the file is %s, over the %s limit of a param: put the data in a file the flow reads, or in an artifact",
				name, path, flow.Size(fi.Size()), flow.Size(flow.MaxParam))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return usageErr("--param-file %s=%s: %v", name, path, err)
		}
		v := string(b)
		if p := fl.Param(name); p != nil && p.Type != flow.String && p.Type != "" {
			v = strings.TrimSpace(v)
		}
		given[name] = v
	}
	return nil
}

// noteFileParams says which params reach shell tasks as a file rather than
// in the environment, so a task reading $BATON_PARAM_X is not surprised.
func (a *app) noteFileParams(params map[string]json.RawMessage) {
	inEnv := flow.EnvParams(params)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if v := params[name]; !inEnv[name] {
			fmt.Fprintf(a.err, "param %s is %s, more than the environment takes (%s a param, %s all params): shell tasks read it from the file named by $BATON_PARAM_FILE_%s (BATON_PARAM_%s is not set)\n",
				name, flow.Size(int64(len(flow.ParamEnv(v)))), flow.Size(flow.MaxEnvParam), flow.Size(flow.MaxEnvParams), strings.ToUpper(name), strings.ToUpper(name))
		}
	}
}

func (a *app) resumeCmd() *cobra.Command {
	var from string
	var ef execFlags
	cmd := &cobra.Command{
		Use:   "resume RUN_ID",
		Short: "Run again what did not succeed in a run, reusing every task that did",
		Long: `Make a new run of the same flow version and params that reuses every task that
succeeded in RUN_ID (recorded as reused, with its origin) and runs the rest.
With --from STEP, that step and everything downstream of it run again.
A run whose process died (killed, crashed, machine lost) can be resumed: a dead
process on this machine is detected at once, one elsewhere when its lease expires.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			eng, err := a.engine(e, ef)
			if err != nil {
				return err
			}
			defer eng.Close()
			run, err := eng.Resume(ctx, id, from, true)
			if err != nil {
				return notFound(err)
			}
			return a.executeWith(ctx, e, eng, run, ef)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "re-run this step and everything downstream of it")
	ef.add(cmd)
	return cmd
}

// resolveFlow reads a flow file (checked against the registered signal
// contracts and packed into a code snapshot, not yet stored), or finds a
// registered flow by name.
func (a *app) resolveFlow(ctx context.Context, e *env, arg, codeLimit string) (*flow.Flow, *catalog.Parsed, store.FlowVersion, error) {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		p, err := a.readDocs(ctx, e, []string{arg}, codeLimit)
		if err != nil {
			return nil, nil, store.FlowVersion{}, err
		}
		if p[0].Flow.ContractsOnly() {
			return nil, nil, store.FlowVersion{}, usageErr("%s declares only signal contracts, so it cannot run: apply it with `baton flow apply %s`", arg, arg)
		}
		return p[0].Flow, &p[0], store.FlowVersion{}, nil
	}
	if flow.ValidName(arg) && !strings.ContainsAny(arg, "./") {
		v, err := e.st.FlowVersion(ctx, arg, 0)
		if err == nil {
			fl, err := flow.Stored(v.Flow, v.Version, v.Spec)
			return fl, nil, v, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, nil, v, err
		}
	}
	return nil, nil, store.FlowVersion{}, usageErr("%s: no such flow file, and no registered flow has that name (see `baton flow list`)", arg)
}

// readDocs reads and checks flow (and signals) files, and packs each
// flow's folder into a code snapshot of at most codeLimit (see
// home.CodeOptions). It tells the user what the snapshots leave out.
func (a *app) readDocs(ctx context.Context, e *env, paths []string, codeLimit string) ([]catalog.Parsed, error) {
	opt, err := e.home.CodeOptions(codeLimit)
	if err != nil {
		return nil, usageErr("--code-limit: %v", err)
	}
	docs := make([]catalog.Document, 0, len(paths))
	for _, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, usageErr("%s: %v", path, err)
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		d := catalog.FileDocument(abs, data)
		d.Path = path
		docs = append(docs, d)
	}
	parsed, err := catalog.CheckCode(ctx, e.st, docs, &catalog.Code{Blobs: e.blobs, Options: opt})
	if err != nil {
		return nil, err
	}
	told := map[string]bool{}
	for _, p := range parsed {
		if told[p.Doc.Dir] {
			continue
		}
		told[p.Doc.Dir] = true
		for _, s := range p.Skipped {
			fmt.Fprintf(a.err, "baton: the code snapshot of %s leaves out %s: %s\n", p.Doc.Dir, s.Path, s.Reason)
		}
	}
	return parsed, nil
}

func (a *app) engine(e *env, ef execFlags) (*engine.Engine, error) {
	if ef.workers < 0 {
		return nil, usageErr("--workers %d: must be positive", ef.workers)
	}
	opt := engine.Options{Workers: ef.workers, TempDir: e.home.TempDir(), Env: e.home.Env(), CodeDir: e.home.CodeDir(),
		TrainingSet: feature.StepFunc(e.st, e.featureDir(), parquet.Write)}
	if e.home.Postgres() {
		// On a shared store tasks go through its queue: this process
		// works it (below), and so may any `baton worker`.
		opt.Dispatch = engine.Queue
	}
	return engine.New(e.st, e.blobs, opt)
}

func (a *app) executeWith(ctx context.Context, e *env, eng *engine.Engine, run store.Run, ef execFlags) error {
	var obs engine.Observer
	var b *progress.Bars
	switch {
	case ef.noProgress:
	case isTerminal(a.err):
		b = progress.NewBars(a.err)
		obs = b
	default:
		obs = progress.NewLines(a.err)
	}
	start := time.Now()
	if e.home.Postgres() {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); eng.Work(wctx, engine.WorkOptions{}) }()
		defer func() { stop(); <-done }()
	}
	final, err := eng.Execute(ctx, run.ID, engine.ExecOptions{Observer: obs})
	if b != nil && err != nil {
		b.Close()
	}
	if err != nil {
		return fmt.Errorf("run %d: %w", run.ID, err)
	}
	if a.json() {
		if err := a.showRun(ctx, e, final.ID); err != nil {
			return err
		}
	} else {
		took := final.FinishedAt.Sub(final.StartedAt)
		if final.StartedAt.IsZero() {
			took = time.Since(start)
		}
		fmt.Fprintf(a.out, "run %d %s in %s\n", final.ID, final.Status, took.Round(time.Millisecond))
		if final.Error != "" {
			fmt.Fprintf(a.out, "  %s\n", final.Error)
		}
		if final.Status != store.RunSucceeded {
			fmt.Fprintf(a.out, "  inspect: baton show %d; resume: baton resume %d\n", final.ID, final.ID)
		}
	}
	if final.Status != store.RunSucceeded {
		return errSilentFail
	}
	return nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func parseRunID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("run id %q: must be a positive number, as `baton runs` lists", s)
	}
	return id, nil
}
