package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// A subflow step's task runs another registered flow as a child run and
// waits for it, holding no worker slot meanwhile (the child's tasks need
// them). The child is tagged with the task that started it, so a task
// tried again, or the same task of a resumed run, finds it: a child that
// succeeded is taken as it is, one whose process died is resumed (its
// completed tasks reused), and only a task without one starts a new
// child. Cancelling the parent cancels the child (its context).

// TriggerSubflow is the trigger of a child run.
const TriggerSubflow = store.TriggerSubflow

// subflowTag names the task a child run belongs to.
func subflowTag(runID int64, step string, idx int) string {
	return "subflow:" + strconv.FormatInt(runID, 10) + "/" + step + "/" + strconv.Itoa(idx)
}

// maxSubflowDepth bounds subflows started by subflows (A runs B runs A...).
const maxSubflowDepth = 8

func (r *runner) execSubflow(ctx context.Context, s *stepRun, k store.TaskKey, path []int, item json.RawMessage) outcome {
	sf := s.def.Subflow
	if depth := strings.Count(r.run.TriggerDetail, ">") + 1; r.run.Trigger == TriggerSubflow && depth >= maxSubflowDepth {
		return failed("subflow %s: %d subflows deep (%s): a flow that runs itself through others never ends", sf.Flow, depth, r.run.TriggerDetail)
	}
	child, err := r.findChild(ctx, k)
	if err != nil {
		return failed("subflow %s: %v", sf.Flow, err)
	}
	if child.ID == 0 {
		if child, err = r.newChild(ctx, s, k, path, item); err != nil {
			return failed("subflow %s: %v", sf.Flow, err)
		}
	}
	if !child.Status.Final() {
		if child, err = r.e.Execute(ctx, child.ID, ExecOptions{}); err != nil {
			// A cancelled run, or a timed out task, is told apart by
			// attempt: only the first cancels the parent.
			return failed("subflow %s: run %d: %v", sf.Flow, child.ID, err)
		}
	}
	if child.Status != store.RunSucceeded {
		return failed("subflow %s: run %d %s: %s", sf.Flow, child.ID, child.Status, child.Error)
	}
	return r.childOutputs(ctx, k, child)
}

// findChild returns the child run of task k that a new attempt should go
// on with: one that succeeded, or one left running by a process that died
// (resumed now); the zero run when there is none (or only failed ones).
func (r *runner) findChild(ctx context.Context, k store.TaskKey) (store.Run, error) {
	tags := []string{subflowTag(k.RunID, k.Step, k.Index)}
	if r.origin != 0 {
		tags = append(tags, subflowTag(r.origin, k.Step, k.Index))
	}
	for _, tag := range tags {
		runs, err := r.e.st.Runs(ctx, store.RunFilter{Tag: tag, Limit: 20})
		if err != nil {
			return store.Run{}, err
		}
		for _, c := range runs { // newest first
			switch {
			case c.Status == store.RunSucceeded:
				return c, nil
			case !c.Status.Final():
				if c.Owner == r.e.owner {
					return c, nil
				}
				resumed, err := r.e.Resume(ctx, c.ID, "", true)
				if err != nil {
					return store.Run{}, fmt.Errorf("resume child run %d: %w", c.ID, err)
				}
				return resumed, nil
			}
		}
	}
	return store.Run{}, nil
}

// newChild creates the child run of task k with its params resolved.
func (r *runner) newChild(ctx context.Context, s *stepRun, k store.TaskKey, path []int, item json.RawMessage) (store.Run, error) {
	sf := s.def.Subflow
	v, err := r.e.st.FlowVersion(ctx, sf.Flow, 0)
	if errors.Is(err, store.ErrNotFound) {
		return store.Run{}, fmt.Errorf("no flow %q is registered: apply it first (baton flow apply FILE)", sf.Flow)
	}
	if err != nil {
		return store.Run{}, err
	}
	cf, err := flow.Stored(v.Flow, v.Version, v.Spec)
	if err != nil {
		return store.Run{}, err
	}
	raw := map[string]string{}
	for name, val := range sf.Params {
		if raw[name], err = r.subflowParam(ctx, s, path, item, val); err != nil {
			return store.Run{}, fmt.Errorf("param %s: %w", name, err)
		}
	}
	params, err := cf.ResolveParams(raw)
	if err != nil {
		return store.Run{}, err
	}
	detail := taskID(k, path)
	if r.run.Trigger == TriggerSubflow {
		detail = r.run.TriggerDetail + " > " + detail
	}
	return r.e.st.CreateRun(ctx, store.NewRun{Flow: cf.Name, FlowVersion: v.Version, Params: params,
		Tags: []string{subflowTag(k.RunID, k.Step, k.Index)}, Trigger: TriggerSubflow, TriggerDetail: detail, Owner: r.e.owner})
}

// subflowParam resolves one value of a subflow's params.
func (r *runner) subflowParam(ctx context.Context, s *stepRun, path []int, item json.RawMessage, val string) (string, error) {
	ref, ok := flow.SubflowRef(val)
	if !ok {
		return val, nil
	}
	switch ref.Kind {
	case "param":
		p, ok := r.run.Params[ref.Name]
		if !ok {
			return "", fmt.Errorf("%s: the run has no param %q", val, ref.Name)
		}
		return flow.ParamEnv(p), nil
	case "item":
		return flow.ParamEnv(item), nil
	case "input":
		t := &Task{Key: store.TaskKey{RunID: r.run.ID, Step: s.def.Name}, Path: path, r: r, s: s}
		up, lo, hi, err := t.upstream(ctx, ref.Step)
		if err != nil {
			return "", err
		}
		if hi-lo != 1 {
			return "", fmt.Errorf("%s: this task joins %d tasks of %s: name one artifact a single task wrote", val, hi-lo, up.def.Name)
		}
		a, err := r.e.st.Artifact(ctx, store.TaskKey{RunID: r.run.ID, Step: up.def.Name, Index: lo}, ref.Name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", val, err)
		}
		if a.Size > 64<<10 {
			return "", fmt.Errorf("%s holds %d bytes: a param from an artifact is at most 64 KiB", val, a.Size)
		}
		b, err := r.e.blobs.Read(ctx, a.Digest)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("%s: write ${param.NAME}, ${item} or ${input.STEP/NAME}", val)
}

// childOutputs makes the child's artifacts the task's, by digest (no
// copy), named CHILD_STEP/NAME, with subflow.json saying which run it was.
func (r *runner) childOutputs(ctx context.Context, k store.TaskKey, child store.Run) outcome {
	arts, err := r.e.st.Artifacts(ctx, store.ArtifactFilter{RunID: child.ID})
	if err != nil {
		return failed("subflow: artifacts of run %d: %v", child.ID, err)
	}
	steps, err := r.e.st.Steps(ctx, child.ID)
	if err != nil {
		return failed("subflow: steps of run %d: %v", child.ID, err)
	}
	byName := map[string]store.Step{}
	for _, st := range steps {
		byName[st.Name] = st
	}
	now := time.Now()
	out := outcome{status: store.TaskSucceeded}
	for _, a := range arts {
		st := byName[a.Step]
		name := a.Step + "/" + a.Name
		if shape := st.TaskShape(); shape.Level() > 0 || st.NumTasks > 1 {
			p := []int{a.Index}
			if base := st.NumTasks - shape.Count(); shape.Level() > 0 && a.Index >= base {
				if q, ok := shape.Path(a.Index - base); ok {
					p = q
				}
			}
			name = a.Step + "/" + store.FormatPath(p) + "/" + a.Name
		}
		out.arts = append(out.arts, store.Artifact{TaskKey: k, Name: name, Digest: a.Digest, Size: a.Size, CreatedAt: now})
	}
	meta, _ := json.Marshal(map[string]any{"run": child.ID, "flow": child.Flow, "flow_version": child.FlowVersion, "status": child.Status})
	d, n, err := r.e.blobs.PutBytes(ctx, meta)
	if err != nil {
		return failed("subflow: %v", err)
	}
	out.arts = append(out.arts, store.Artifact{TaskKey: k, Name: "subflow.json", Digest: d, Size: n, CreatedAt: now})
	return out
}
