// Package client reads what baton has recorded: flows, their runs, each
// run's steps and tasks, and every artifact a task produced, for any past
// run. It walks Flow → Run → Step → Task → Artifact:
//
//	c, err := client.Open(ctx, client.Options{Home: ".baton"})
//	run, err := c.Run(ctx, 12)
//	step, err := run.Step(ctx, "train")
//	tasks, err := step.Tasks(ctx)
//	arts, err := tasks[0].Artifacts(ctx)
//	data, err := arts[0].Bytes(ctx)
//
// or reads one artifact by its path: c.Artifact(ctx, "12/train/model.bin").
// The client only reads; it is safe to use while runs execute.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/store"
)

// ErrNotFound is returned (wrapped) when a flow, run, step, task or
// artifact does not exist.
var ErrNotFound = store.ErrNotFound

// Options say where baton's state is. Empty fields follow the CLI: $BATON_HOME
// (else ./.baton), $BATON_DB, $BATON_ARTIFACTS.
type Options struct {
	Home string
	DB   string
}

// Client reads baton's records. It is safe for concurrent use.
type Client struct {
	st    store.Store
	blobs *artifact.Store
}

// Open connects to the store and the artifact bucket of a home.
func Open(ctx context.Context, opt Options) (*Client, error) {
	h, err := home.Resolve(opt.Home, opt.DB)
	if err != nil {
		return nil, err
	}
	st, blobs, err := h.Open(ctx)
	if err != nil {
		return nil, err
	}
	return &Client{st: st, blobs: blobs}, nil
}

// Close releases the store and the bucket.
func (c *Client) Close() error {
	return errors.Join(c.blobs.Close(), c.st.Close())
}

// Flow is a registered flow.
type Flow struct {
	Name          string
	LatestVersion int
	Versions      int
	c             *Client
}

// Flows lists the registered flows by name.
func (c *Client) Flows(ctx context.Context) ([]*Flow, error) {
	fs, err := c.st.Flows(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Flow, len(fs))
	for i, f := range fs {
		out[i] = &Flow{Name: f.Name, LatestVersion: f.LatestVersion, Versions: f.Versions, c: c}
	}
	return out, nil
}

// Flow returns the registered flow named name.
func (c *Client) Flow(ctx context.Context, name string) (*Flow, error) {
	vs, err := c.st.FlowVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	return &Flow{Name: name, LatestVersion: vs[0].Version, Versions: len(vs), c: c}, nil
}

// RunFilter narrows Flow.Runs.
type RunFilter struct {
	// Status keeps runs in this state: pending, running, succeeded,
	// failed or cancelled.
	Status string
	Tag    string
	// Limit caps the result; 0 means 100.
	Limit int
}

// Runs lists the flow's runs, newest first.
func (f *Flow) Runs(ctx context.Context, filter RunFilter) ([]*Run, error) {
	rs, err := f.c.st.Runs(ctx, store.RunFilter{Flow: f.Name, Status: store.RunStatus(filter.Status), Tag: filter.Tag, Limit: filter.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]*Run, len(rs))
	for i, r := range rs {
		out[i] = f.c.newRun(r)
	}
	return out, nil
}

// LatestSuccessfulRun returns the newest run of the flow that succeeded.
func (f *Flow) LatestSuccessfulRun(ctx context.Context) (*Run, error) {
	rs, err := f.Runs(ctx, RunFilter{Status: string(store.RunSucceeded), Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("flow %s has no successful run: %w", f.Name, ErrNotFound)
	}
	return rs[0], nil
}

// Run is one execution of a flow.
type Run struct {
	ID          int64
	Flow        string
	FlowVersion int
	// Status is pending, running, succeeded, failed or cancelled.
	Status string
	Params map[string]json.RawMessage
	Tags   []string
	// Trigger says what started the run (manual, resume, ...), and
	// OriginRunID which run a resumed run reused.
	Trigger     string
	OriginRunID int64
	Error       string
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	c           *Client
}

func (c *Client) newRun(r store.Run) *Run {
	return &Run{ID: r.ID, Flow: r.Flow, FlowVersion: r.FlowVersion, Status: string(r.Status), Params: r.Params,
		Tags: r.Tags, Trigger: r.Trigger, OriginRunID: r.OriginRunID, Error: r.Error, CreatedAt: r.CreatedAt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, c: c}
}

// Run returns the run with id.
func (c *Client) Run(ctx context.Context, id int64) (*Run, error) {
	r, err := c.st.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.newRun(r), nil
}

// Param decodes the run parameter name into v.
func (r *Run) Param(name string, v any) error {
	raw, ok := r.Params[name]
	if !ok {
		return fmt.Errorf("run %d has no param %q: %w", r.ID, name, ErrNotFound)
	}
	return json.Unmarshal(raw, v)
}

// Step is one step of a run.
type Step struct {
	Run      *Run
	Name     string
	Status   string
	Foreach  bool
	NumTasks int
}

// Steps returns the run's steps in the flow's order.
func (r *Run) Steps(ctx context.Context) ([]*Step, error) {
	stored, err := r.c.st.Steps(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.Step{}
	for _, s := range stored {
		byName[s.Name] = s
	}
	run, err := r.c.st.Run(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	fl, _, err := engine.Load(ctx, r.c.st, run)
	if err != nil {
		return nil, err
	}
	var out []*Step
	for _, fs := range fl.TopoOrder() {
		s, ok := byName[fs.Name]
		if !ok {
			s = store.Step{Name: fs.Name, Status: store.TaskPending, Foreach: fs.Foreach != nil}
		}
		out = append(out, &Step{Run: r, Name: s.Name, Status: string(s.Status), Foreach: s.Foreach, NumTasks: s.NumTasks})
	}
	return out, nil
}

// Step returns the step named name.
func (r *Run) Step(ctx context.Context, name string) (*Step, error) {
	steps, err := r.Steps(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("run %d has no step %q: %w", r.ID, name, ErrNotFound)
}

// Task is one unit of work of a step (one per foreach item).
type Task struct {
	Step     *Step
	Index    int
	Status   string
	Attempts int
	// ReusedFrom names the run whose result a resumed run reused for this
	// task; 0 when it ran in this run.
	ReusedFrom int64
	StartedAt  time.Time
	FinishedAt time.Time
	Error      string
}

// Tasks returns the step's tasks by index.
func (s *Step) Tasks(ctx context.Context) ([]*Task, error) {
	ts, err := s.Run.c.st.Tasks(ctx, s.Run.ID, s.Name)
	if err != nil {
		return nil, err
	}
	out := make([]*Task, len(ts))
	for i, t := range ts {
		out[i] = s.newTask(t)
	}
	return out, nil
}

func (s *Step) newTask(t store.Task) *Task {
	return &Task{Step: s, Index: t.Index, Status: string(t.Status), Attempts: t.Attempts, ReusedFrom: t.ReusedFrom.RunID,
		StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, Error: t.Error}
}

// Task returns the task with index (0 for a step without foreach).
func (s *Step) Task(ctx context.Context, index int) (*Task, error) {
	t, err := s.Run.c.st.Task(ctx, store.TaskKey{RunID: s.Run.ID, Step: s.Name, Index: index})
	if err != nil {
		return nil, err
	}
	return s.newTask(t), nil
}

func (t *Task) key() store.TaskKey {
	return store.TaskKey{RunID: t.Step.Run.ID, Step: t.Step.Name, Index: t.Index}
}

// Artifacts lists what the task produced.
func (t *Task) Artifacts(ctx context.Context) ([]*Artifact, error) {
	c := t.Step.Run.c
	as, err := c.st.Artifacts(ctx, store.ArtifactFilter{RunID: t.Step.Run.ID, Step: t.Step.Name, Index: t.Index})
	if err != nil {
		return nil, err
	}
	out := make([]*Artifact, len(as))
	for i, a := range as {
		out[i] = c.newArtifact(a, t.Step.Foreach)
	}
	return out, nil
}

// Artifact returns the task's artifact named name.
func (t *Task) Artifact(ctx context.Context, name string) (*Artifact, error) {
	c := t.Step.Run.c
	a, err := c.st.Artifact(ctx, t.key(), name)
	if err != nil {
		return nil, err
	}
	return c.newArtifact(a, t.Step.Foreach), nil
}

// Logs returns the stdout and stderr of one attempt (0: the last). A task a
// resumed run reused has the logs of the run that did the work.
func (t *Task) Logs(ctx context.Context, attempt int) (stdout, stderr []byte, err error) {
	c := t.Step.Run.c
	k := t.key()
	if t.ReusedFrom != 0 {
		k.RunID = t.ReusedFrom
	}
	atts, err := c.st.Attempts(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	if len(atts) == 0 {
		return nil, nil, fmt.Errorf("task %s has not run: %w", k, ErrNotFound)
	}
	a := atts[len(atts)-1]
	if attempt > 0 {
		if attempt > len(atts) {
			return nil, nil, fmt.Errorf("task %s has %d attempt(s), not %d: %w", k, len(atts), attempt, ErrNotFound)
		}
		a = atts[attempt-1]
	}
	read := func(d string) ([]byte, error) {
		if d == "" {
			return nil, nil
		}
		return c.blobs.Read(ctx, d)
	}
	if stdout, err = read(a.StdoutDigest); err != nil {
		return nil, nil, err
	}
	if stderr, err = read(a.StderrDigest); err != nil {
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// Artifact is a named, immutable output of a task, stored by content.
type Artifact struct {
	// Path addresses it: RUN/STEP/NAME or RUN/STEP/INDEX/NAME.
	Path   string
	RunID  int64
	Step   string
	Index  int
	Name   string
	Digest string // SHA-256 of the content
	Size   int64
	c      *Client
}

func (c *Client) newArtifact(a store.Artifact, foreach bool) *Artifact {
	return &Artifact{Path: artifact.PathOf(a, foreach), RunID: a.RunID, Step: a.Step, Index: a.Index, Name: a.Name,
		Digest: a.Digest, Size: a.Size, c: c}
}

// Artifact returns the artifact at path, RUN/STEP/NAME or RUN/STEP/INDEX/NAME.
func (c *Client) Artifact(ctx context.Context, path string) (*Artifact, error) {
	p, err := artifact.ParsePath(path)
	if err != nil {
		return nil, err
	}
	a, err := artifact.Resolve(ctx, c.st, p)
	if err != nil {
		return nil, err
	}
	steps, err := c.st.Steps(ctx, a.RunID)
	if err != nil {
		return nil, err
	}
	foreach := false
	for _, s := range steps {
		if s.Name == a.Step {
			foreach = s.Foreach
		}
	}
	return c.newArtifact(a, foreach), nil
}

// Open streams the content. The reader fails at the end if the stored
// content no longer matches its digest.
func (a *Artifact) Open(ctx context.Context) (io.ReadCloser, error) {
	return a.c.blobs.Open(ctx, a.Digest)
}

// Bytes returns the content.
func (a *Artifact) Bytes(ctx context.Context) ([]byte, error) {
	return a.c.blobs.Read(ctx, a.Digest)
}

// JSON decodes the content as JSON into v.
func (a *Artifact) JSON(ctx context.Context, v any) error {
	b, err := a.Bytes(ctx)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("artifact %s: %w", a.Path, err)
	}
	return nil
}
