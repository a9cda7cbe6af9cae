// Package sdk defines baton flows in Go. A step is either an in-process Go
// function or a shell command; both get the same durable state, artifacts,
// retries, timeouts, foreach fan-out and resume as a YAML flow, and runs
// show up in `baton runs`, `baton show` and the client like any other.
//
//	f := &sdk.Flow{
//		Name: "squares",
//		Steps: []sdk.Step{
//			{Name: "start", Run: func(ctx context.Context, t *sdk.Task) error {
//				return t.OutputJSON(ctx, "items.json", []int{1, 2, 3})
//			}},
//			{Name: "square", Needs: []string{"start"}, Foreach: "items.json", Run: square},
//			{Name: "sum", Needs: []string{"square"}, Run: sum},
//		},
//	}
//	res, err := sdk.Run(ctx, f, sdk.Options{Home: ".baton"})
//
// Resume re-runs a failed run of the same flow, reusing what succeeded.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/progress"
	"github.com/baton-ml/baton/internal/store"
)

// Flow is a flow defined in Go.
type Flow struct {
	// Name is unique in a home: [a-z0-9][a-z0-9_-]*.
	Name        string
	Description string
	// Version names the code of the step functions. Change it when the
	// functions change meaningfully: a new Version registers a new flow
	// version, so runs record which code produced them.
	Version string
	Params  []Param
	Steps   []Step
}

// Param declares a run parameter. Type is "string" (the default), "int",
// "float", "bool" or "json". A param with a nil Default is required.
type Param struct {
	Name        string
	Type        string
	Default     any
	Description string
}

// Step is one node of the flow. Set exactly one of Run (a Go function) and
// Shell (a command run with /bin/sh -c in Options.Dir, as in a YAML flow).
type Step struct {
	Name  string
	Needs []string
	Run   func(ctx context.Context, t *Task) error
	Shell string
	// Foreach fans the step out: the name of an upstream step's artifact
	// holding a JSON array ("name" or "step/name"), or ForeachItems inline.
	Foreach      string
	ForeachItems []any
	// Join, for a step after a foreach: true joins the deepest foreach
	// level of its needs, false runs in it once per task; nil does what
	// a YAML flow without join: does (see docs/flows.md).
	Join *bool
	// Cases makes the step a switch: its task writes the case to take to
	// the artifact "case" (see Task.Switch), and Cases maps each case to
	// the step it leads to, a step that needs this one, or (a loop) this
	// step or one before it, with MaxIterations bounding the loop.
	Cases         map[string]string
	MaxIterations int
	// Subflow runs that registered flow per task (see docs/flows.md),
	// with SubflowParams as its params ("${item}", "${param.X}",
	// "${input.STEP/NAME}" or text).
	Subflow       string
	SubflowParams map[string]string
	// Retries: Attempts is the total number of tries (default 1); the
	// wait before the second is Backoff, doubling up to MaxBackoff.
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds each try; a Go function must honour ctx.
	Timeout time.Duration
	Env     map[string]string
}

// Task is what a Go step sees.
type Task struct{ t *engine.Task }

// RunID, Step, Index and Attempt identify the task; Index is 0 outside a
// foreach step, Attempt counts from 1.
func (t *Task) RunID() int64 { return t.t.Key.RunID }

// Step returns the step's name.
func (t *Task) Step() string { return t.t.Key.Step }

// Index returns the foreach index (0 outside a foreach step); in a nested
// foreach, the innermost level's.
func (t *Task) Index() int {
	if p := t.t.Path; len(p) > 0 {
		return p[len(p)-1]
	}
	return t.t.Key.Index
}

// Path returns the task's index at each foreach level its step runs in,
// outermost first (empty outside any foreach).
func (t *Task) Path() []int { return slices.Clone(t.t.Path) }

// Attempt returns the try number, from 1.
func (t *Task) Attempt() int { return t.t.Attempt }

// Param decodes the run parameter name into v.
func (t *Task) Param(name string, v any) error {
	raw, ok := t.t.Params[name]
	if !ok {
		return fmt.Errorf("no param %q", name)
	}
	return json.Unmarshal(raw, v)
}

// Item decodes the foreach item into v.
func (t *Task) Item(v any) error {
	if t.t.Item == nil {
		return fmt.Errorf("step %s is not a foreach step", t.Step())
	}
	return json.Unmarshal(t.t.Item, v)
}

// Switch names the case a switch step's task takes (the artifact "case").
func (t *Task) Switch(ctx context.Context, c string) error {
	return t.t.Output(ctx, "case", []byte(c))
}

// Iteration is the loop iteration the task runs (from 1), or 0 outside a
// loop.
func (t *Task) Iteration() int { return t.t.Iteration }

// Output stores data as the task's artifact name (a relative path).
func (t *Task) Output(ctx context.Context, name string, data []byte) error {
	return t.t.Output(ctx, name, data)
}

// OutputJSON stores v, encoded as JSON, as the artifact name.
func (t *Task) OutputJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", name, err)
	}
	return t.t.Output(ctx, name, b)
}

// Input reads artifact name of step, one of this step's needs.
func (t *Task) Input(ctx context.Context, step, name string) ([]byte, error) {
	return t.t.Input(ctx, step, name)
}

// InputAt reads artifact name of task index of a step this one joins (the
// index within this task's foreach level).
func (t *Task) InputAt(ctx context.Context, step string, index int, name string) ([]byte, error) {
	return t.t.InputAt(ctx, step, index, name)
}

// InputJSON decodes artifact name of step into v.
func (t *Task) InputJSON(ctx context.Context, step, name string, v any) error {
	b, err := t.t.Input(ctx, step, name)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Input is one artifact of an upstream step, as listed by Inputs.
type Input struct {
	Index int
	Name  string
	Size  int64
	a     store.Artifact
	t     *engine.Task
}

// Read returns the input's content.
func (in Input) Read(ctx context.Context) ([]byte, error) { return in.t.Read(ctx, in.a) }

// Inputs lists every artifact of step (of every task, for a foreach step),
// ordered by task index and name.
func (t *Task) Inputs(ctx context.Context, step string) ([]Input, error) {
	arts, err := t.t.Inputs(ctx, step)
	if err != nil {
		return nil, err
	}
	out := make([]Input, len(arts))
	for i, a := range arts {
		out[i] = Input{Index: a.Index, Name: a.Name, Size: a.Size, a: a, t: t.t}
	}
	return out, nil
}

// Stdout and Stderr are kept as the task's logs (`baton logs`).
func (t *Task) Stdout() io.Writer { return &t.t.Stdout }

// Stderr is kept as the task's error log.
func (t *Task) Stderr() io.Writer { return &t.t.Stderr }

// Logf writes a line to the task's stdout log.
func (t *Task) Logf(format string, args ...any) {
	fmt.Fprintf(&t.t.Stdout, format+"\n", args...)
}

// Options say where and how to run.
type Options struct {
	// Home and DB select the state, as the CLI's --home and --db.
	Home string
	DB   string
	// Dir is the folder shell steps run in; default the current one.
	Dir string
	// Workers caps the tasks running at once; default the number of CPUs.
	Workers int
	// Params are run parameters as text, converted to their declared types.
	Params map[string]string
	Tags   []string
	// Progress, if set, receives progress lines.
	Progress io.Writer
}

// Result is how a run ended.
type Result struct {
	RunID int64
	// Status is succeeded, failed or cancelled.
	Status string
	Error  string
}

// Succeeded reports whether the run succeeded.
func (r Result) Succeeded() bool { return r.Status == string(store.RunSucceeded) }

// Validate checks the flow without running it.
func (f *Flow) Validate() error {
	_, _, err := f.compile()
	return err
}

// compile turns f into the engine's flow model and its step functions.
func (f *Flow) compile() (*flow.Flow, map[string]engine.GoFunc, error) {
	fl := &flow.Flow{Name: f.Name, Description: f.Description}
	for _, p := range f.Params {
		fp := flow.Param{Name: p.Name, Type: flow.ParamType(p.Type), Description: p.Description}
		if fp.Type == "" {
			fp.Type = flow.String
		}
		if p.Default != nil {
			b, err := json.Marshal(p.Default)
			if err != nil {
				return nil, nil, fmt.Errorf("flow %s: param %s: default: %w", f.Name, p.Name, err)
			}
			fp.Default = b
		}
		fl.Params = append(fl.Params, fp)
	}
	funcs := map[string]engine.GoFunc{}
	for _, s := range f.Steps {
		if n := btoi(s.Run != nil) + btoi(s.Shell != "") + btoi(s.Subflow != ""); n != 1 {
			return nil, nil, fmt.Errorf("flow %s: step %s: set exactly one of Run (a Go function), Shell and Subflow", f.Name, s.Name)
		}
		fs := flow.Step{Name: s.Name, Needs: s.Needs, Run: s.Shell, Timeout: flow.Duration(s.Timeout), Env: s.Env, Join: s.Join,
			Retry: flow.Retry{Attempts: s.Attempts, Backoff: flow.Duration(s.Backoff), MaxBackoff: flow.Duration(s.MaxBackoff)}}
		if s.Cases != nil {
			fs.Switch = &flow.Switch{Cases: s.Cases, MaxIterations: s.MaxIterations}
		}
		if s.Subflow != "" {
			fs.Subflow = &flow.Subflow{Flow: s.Subflow, Params: s.SubflowParams}
		}
		switch {
		case s.Foreach != "" && s.ForeachItems != nil:
			return nil, nil, fmt.Errorf("flow %s: step %s: set Foreach or ForeachItems, not both", f.Name, s.Name)
		case s.Foreach != "":
			fs.Foreach = &flow.Foreach{Artifact: s.Foreach}
		case s.ForeachItems != nil:
			fe := &flow.Foreach{Items: []json.RawMessage{}}
			for i, it := range s.ForeachItems {
				b, err := json.Marshal(it)
				if err != nil {
					return nil, nil, fmt.Errorf("flow %s: step %s: item %d: %w", f.Name, s.Name, i, err)
				}
				fe.Items = append(fe.Items, b)
			}
			fs.Foreach = fe
		}
		if run := s.Run; run != nil {
			funcs[s.Name] = func(ctx context.Context, t *engine.Task) error { return run(ctx, &Task{t: t}) }
		}
		fl.Steps = append(fl.Steps, fs)
	}
	if err := fl.Validate(); err != nil {
		return nil, nil, err
	}
	return fl, funcs, nil
}

// Run registers the flow (a new version if it changed) and runs it to its
// end. The error reports invalid input or a failure of baton itself; how
// the run went is in the Result.
func Run(ctx context.Context, f *Flow, opt Options) (Result, error) {
	fl, funcs, err := f.compile()
	if err != nil {
		return Result{}, err
	}
	params, err := fl.ResolveParams(opt.Params)
	if err != nil {
		return Result{}, err
	}
	s, err := open(ctx, opt)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	spec, err := json.Marshal(fl)
	if err != nil {
		return Result{}, err
	}
	v, _, err := s.st.PutFlowVersion(ctx, store.FlowVersion{Flow: fl.Name, Digest: fl.VersionDigest(s.dir, f.Version),
		Spec: spec, Dir: s.dir})
	if err != nil {
		return Result{}, fmt.Errorf("register flow %s: %w", fl.Name, err)
	}
	run, err := s.st.CreateRun(ctx, store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Params: params, Tags: opt.Tags,
		Trigger: store.TriggerManual, TriggerDetail: "sdk", Owner: s.eng.Owner()})
	if err != nil {
		return Result{}, err
	}
	return s.execute(ctx, run.ID, funcs, opt)
}

// Resume runs again what did not succeed in run runID of f, reusing every
// task that did (from a step on, with from). The run's recorded structure
// must match f's: steps, needs and foreach as they were.
func Resume(ctx context.Context, f *Flow, runID int64, from string, opt Options) (Result, error) {
	fl, funcs, err := f.compile()
	if err != nil {
		return Result{}, err
	}
	s, err := open(ctx, opt)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	origin, err := s.st.Run(ctx, runID)
	if err != nil {
		return Result{}, err
	}
	recorded, _, err := engine.Load(ctx, s.st, origin)
	if err != nil {
		return Result{}, err
	}
	if recorded.Name != fl.Name || recorded.Digest() != fl.Digest() {
		return Result{}, fmt.Errorf("run %d is of flow %s as it was then, which differs from this definition of %s; "+
			"start a new run instead", runID, recorded.Name, fl.Name)
	}
	run, err := s.eng.Resume(ctx, runID, from, true)
	if err != nil {
		return Result{}, err
	}
	return s.execute(ctx, run.ID, funcs, opt)
}

type session struct {
	st     store.Store
	blobs  *artifact.Store
	eng    *engine.Engine
	dir    string
	queued bool
}

func open(ctx context.Context, opt Options) (*session, error) {
	h, err := home.Resolve(opt.Home, opt.DB)
	if err != nil {
		return nil, err
	}
	dir := opt.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	st, blobs, err := h.Open(ctx)
	if err != nil {
		return nil, err
	}
	eo := engine.Options{Workers: opt.Workers, TempDir: h.TempDir(), Env: h.Env()}
	if h.Postgres() {
		// A shared store: tasks go through its queue, and any process
		// running Work for this flow helps.
		eo.Dispatch = engine.Queue
	}
	eng, err := engine.New(st, blobs, eo)
	if err != nil {
		blobs.Close()
		st.Close()
		return nil, err
	}
	return &session{st: st, blobs: blobs, eng: eng, dir: dir, queued: h.Postgres()}, nil
}

func (s *session) close() {
	s.eng.Close()
	s.blobs.Close()
	s.st.Close()
}

func (s *session) execute(ctx context.Context, id int64, funcs map[string]engine.GoFunc, opt Options) (Result, error) {
	var obs engine.Observer
	if opt.Progress != nil {
		obs = progress.NewLines(opt.Progress)
	}
	if s.queued {
		run, err := s.st.Run(ctx, id)
		if err != nil {
			return Result{}, err
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.eng.Work(wctx, engine.WorkOptions{Funcs: map[string]map[string]engine.GoFunc{run.Flow: funcs}})
		}()
		defer func() { stop(); <-done }()
	}
	run, err := s.eng.Execute(ctx, id, engine.ExecOptions{Funcs: funcs, Observer: obs})
	if err != nil {
		return Result{RunID: id}, err
	}
	return Result{RunID: run.ID, Status: string(run.Status), Error: run.Error}, nil
}

// ErrNotFound is returned (wrapped) when a run does not exist.
var ErrNotFound = store.ErrNotFound

// Work runs tasks of these flows (their Go steps and any shell step) from a
// shared store's queue until ctx ends: start it in more processes, on more
// machines, to spread a run's tasks. It needs a PostgreSQL store
// (Options.DB postgres://...).
func Work(ctx context.Context, opt Options, flows ...*Flow) error {
	h, err := home.Resolve(opt.Home, opt.DB)
	if err != nil {
		return err
	}
	if !h.Postgres() {
		return fmt.Errorf("sdk.Work needs a shared store: Options.DB postgres://...")
	}
	funcs := map[string]map[string]engine.GoFunc{}
	for _, f := range flows {
		_, fs, err := f.compile()
		if err != nil {
			return err
		}
		funcs[f.Name] = fs
	}
	s, err := open(ctx, opt)
	if err != nil {
		return err
	}
	defer s.close()
	return s.eng.Work(ctx, engine.WorkOptions{Funcs: funcs})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
