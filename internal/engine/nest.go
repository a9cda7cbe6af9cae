package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/store"
)

// Nested foreach (see flow.Scopes): a step's tasks have paths, one index
// per foreach level its scope holds, and the store keys them by their
// place in depth-first order (store.Shape). A task's inputs are those of
// its context: the path of the level its step joins or fans out from.

// prepare returns what a step starts with: its foreach items (nil unless
// it fans out), its shape, which tasks are skipped (nil: none) and whether
// the whole step is.
func (r *runner) prepare(s *stepRun) ([]json.RawMessage, store.Shape, []bool, bool, error) {
	items, shape, ctxSkipped, err := r.fanOut(s)
	if err != nil {
		return nil, nil, nil, false, err
	}
	skip, all, err := r.plan(r.ctx, s, shape)
	if err != nil {
		return nil, nil, nil, false, err
	}
	return items, shape, skip, all || ctxSkipped, nil
}

// setSkipped records which tasks of a step that starts are skipped (skip
// is by index in the iteration that starts, at base).
func (r *runner) setSkipped(s *stepRun, skip []bool, base int) {
	var flat []bool
	if skip != nil {
		flat = make([]bool, base+len(skip))
		copy(flat[base:], skip)
	}
	r.shapeMu.Lock()
	s.skipped, s.skipKnown = flat, true
	r.shapeMu.Unlock()
}

// fanOut returns the tasks a step starts with: their foreach items (nil
// unless s fans out), the step's shape, and for a foreach step after a
// switch whether every context it fans out from was skipped (a skipped
// context fans out nothing).
func (r *runner) fanOut(s *stepRun) ([]json.RawMessage, store.Shape, bool, error) {
	parent := s.scope
	if s.foreach {
		parent = s.scope[:len(s.scope)-1]
	}
	var pshape store.Shape
	if len(parent) > 0 {
		var err error
		if pshape, err = r.shapeOf(r.ctx, r.byName[parent[len(parent)-1]]); err != nil {
			return nil, nil, false, err
		}
	}
	if !s.foreach {
		return nil, pshape, false, nil
	}
	mayskip := r.mayBeSkipped(s)
	if len(parent) == 0 {
		if mayskip {
			if sk, err := r.skipContext(r.ctx, s, nil); err != nil || sk {
				return nil, store.Shape{{0}}, sk, err
			}
		}
		items, err := r.foreachItems(s)
		if err != nil {
			return nil, nil, false, err
		}
		return items, store.Shape{{len(items)}}, false, nil
	}
	// One list of items per task of the level above, each read from the
	// source step's task at that path.
	srcName, name := s.def.ForeachSource()
	src := r.byName[srcName]
	sshape, sbase, err := r.placeOf(r.ctx, src)
	if err != nil {
		return nil, nil, false, err
	}
	parents := pshape.Count()
	counts := make([]int, 0, parents)
	skipped := 0
	var items []json.RawMessage
	for i, p := range pshape.Paths() {
		if mayskip {
			sk, err := r.skipContext(r.ctx, s, p)
			if err != nil {
				return nil, nil, false, err
			}
			if sk {
				counts = append(counts, 0)
				skipped++
				continue
			}
		}
		idx, ok := sshape.Index(p)
		if !ok {
			return nil, nil, false, fmt.Errorf("foreach source %s has no task %s", srcName, store.FormatPath(p))
		}
		a, err := r.e.st.Artifact(r.ctx, store.TaskKey{RunID: r.run.ID, Step: srcName, Index: sbase + idx}, name)
		if err != nil {
			return nil, nil, false, fmt.Errorf("foreach source %s/%s/%s: %w", srcName, store.FormatPath(p), name, err)
		}
		data, err := r.e.blobs.Read(r.ctx, a.Digest)
		if err != nil {
			return nil, nil, false, fmt.Errorf("foreach source %s/%s/%s: %w", srcName, store.FormatPath(p), name, err)
		}
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, nil, false, fmt.Errorf("foreach source %s/%s/%s must hold a JSON array: %v", srcName, store.FormatPath(p), name, err)
		}
		counts = append(counts, len(list))
		items = append(items, list...)
		if i%64 == 63 {
			if err := r.ctx.Err(); err != nil {
				return nil, nil, false, err
			}
		}
	}
	shape := append(slices.Clone(pshape), counts)
	return items, shape, parents > 0 && skipped == parents, nil
}

// shapeOf returns the shape of a step that has started. A coordinator
// knows it (startStep sets it); a worker, or a coordinator that took a run
// over, reads it from the store once.
func (r *runner) shapeOf(ctx context.Context, s *stepRun) (store.Shape, error) {
	shape, _, err := r.placeOf(ctx, s)
	return shape, err
}

// placeOf returns the shape of a step that has started and the flat index
// of its first task of the iteration it runs (0 outside a loop: a step in
// a loop keeps every iteration's tasks, each iteration's after the last).
// A step in a loop is read again each time by a process that did not start
// it, since its iteration moves on.
func (r *runner) placeOf(ctx context.Context, s *stepRun) (store.Shape, int, error) {
	if len(s.scope) == 0 && s.loop == nil {
		return nil, 0, nil
	}
	r.shapeMu.Lock()
	defer r.shapeMu.Unlock()
	if s.shapeKnown {
		return s.shape, s.base, nil
	}
	steps, err := r.e.st.Steps(ctx, r.run.ID)
	if err != nil {
		return nil, 0, err
	}
	var shape store.Shape
	base, found := 0, false
	for _, st := range steps {
		o := r.byName[st.Name]
		if o == nil || o.shapeKnown || st.Status == store.TaskPending || st.Status == store.TaskWaiting {
			continue
		}
		sh, b := st.TaskShape(), st.NumTasks-st.TaskShape().Count()
		if o == s {
			shape, base, found = sh, b, true
		}
		if o.loop == nil {
			o.shape, o.base, o.shapeKnown = sh, b, true
		}
	}
	if !found {
		return nil, 0, fmt.Errorf("step %s has not started: its tasks are not known yet", s.def.Name)
	}
	return shape, base, nil
}

// setShape records the shape of a step that starts, and the index of its
// iteration's first task.
func (r *runner) setShape(s *stepRun, shape store.Shape, base int) {
	r.shapeMu.Lock()
	s.shape, s.base, s.shapeKnown = shape, base, true
	r.shapeMu.Unlock()
}

// taskPath returns the path of task idx of s.
func (r *runner) taskPath(ctx context.Context, s *stepRun, idx int) ([]int, error) {
	shape, base, err := r.placeOf(ctx, s)
	if err != nil {
		return nil, err
	}
	p, ok := shape.Path(idx - base)
	if !ok {
		return nil, fmt.Errorf("step %s has no task %d", s.def.Name, idx)
	}
	return p, nil
}

// taskName names task idx of s in a message as its address does: its path
// in a nested foreach (0/1), else its index.
func (r *runner) taskName(s *stepRun, idx int) string {
	if len(s.scope) > 1 {
		if p, err := r.taskPath(r.ctx, s, idx); err == nil {
			return store.FormatPath(p)
		}
	}
	return strconv.Itoa(idx)
}

// context is the path whose inputs a task sees: its own for a step that
// joins (or runs once), its parent's for a foreach task.
func (s *stepRun) context(path []int) []int {
	if s.foreach {
		return path[:len(path)-1]
	}
	return path
}

// taskID is what BATON_TASK_ID says: RUN/STEP/INDEX as always for one level
// (or none), RUN/STEP/I/J/... for a nested task.
func taskID(k store.TaskKey, path []int) string {
	if len(path) <= 1 {
		return k.String()
	}
	return strconv.FormatInt(k.RunID, 10) + "/" + k.Step + "/" + store.FormatPath(path)
}

// inputKey names a context's inputs folder under in/: the step for the
// run's context, STEP@I.J for a nested one (no step name holds '@').
//
// A step in a loop has a folder per iteration (STEP#N from the second):
// the last one's may still be being removed.
func inputKey(step string, ctxPath []int, base int) string {
	key := step
	if len(ctxPath) > 0 {
		key += "@" + strings.ReplaceAll(store.FormatPath(ctxPath), "/", ".")
	}
	if base > 0 {
		key += "#" + strconv.Itoa(base)
	}
	return key
}
