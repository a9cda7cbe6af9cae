package artifact

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/store"
)

// Path addresses an artifact of a run: RUN_ID/STEP/NAME, or for a task of
// a foreach step RUN_ID/STEP/INDEX/NAME. NAME may itself contain slashes.
type Path struct {
	RunID int64
	Step  string
	// Rest is what follows the step: NAME, or INDEX/NAME.
	Rest string
}

// ParsePath checks the syntax of a path; Resolve finds what it names.
func ParsePath(s string) (Path, error) {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) < 3 || parts[2] == "" {
		return Path{}, fmt.Errorf("artifact path %q: write RUN_ID/STEP/NAME, or RUN_ID/STEP/INDEX/NAME for a foreach task", s)
	}
	id, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || id <= 0 {
		return Path{}, fmt.Errorf("artifact path %q: %q is not a run id", s, parts[0])
	}
	if parts[1] == "" || strings.ContainsAny(parts[1], `\`) || parts[1] == "." || parts[1] == ".." {
		return Path{}, fmt.Errorf("artifact path %q: %q is not a step name", s, parts[1])
	}
	if err := ValidName(parts[2]); err != nil {
		return Path{}, fmt.Errorf("artifact path %q: %w", s, err)
	}
	return Path{RunID: id, Step: parts[1], Rest: parts[2]}, nil
}

// Resolve looks the path up: whether the step fans out decides if the
// segment after it is a task index.
func Resolve(ctx context.Context, st store.RunReader, p Path) (store.Artifact, error) {
	steps, err := st.Steps(ctx, p.RunID)
	if err != nil {
		return store.Artifact{}, err
	}
	if len(steps) == 0 {
		if _, err := st.Run(ctx, p.RunID); err != nil {
			return store.Artifact{}, err
		}
	}
	var step *store.Step
	names := make([]string, 0, len(steps))
	for i := range steps {
		names = append(names, steps[i].Name)
		if steps[i].Name == p.Step {
			step = &steps[i]
		}
	}
	if step == nil {
		return store.Artifact{}, fmt.Errorf("run %d has no step %q (steps: %s): %w", p.RunID, p.Step,
			strings.Join(names, ", "), store.ErrNotFound)
	}
	k := store.TaskKey{RunID: p.RunID, Step: p.Step}
	name := p.Rest
	// A task in foreach levels is addressed by its index at each level.
	if shape := step.TaskShape(); shape.Level() > 0 {
		path := make([]int, shape.Level())
		rest := p.Rest
		for l := range path {
			idx, after, ok := strings.Cut(rest, "/")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 0 {
				return store.Artifact{}, fmt.Errorf("step %s of run %d runs in %d foreach level(s): write %d/%s/%sNAME", p.Step, p.RunID,
					shape.Level(), p.RunID, p.Step, strings.Repeat("INDEX/", shape.Level()))
			}
			path[l], rest = i, after
		}
		i, ok := shape.Index(path)
		if !ok {
			return store.Artifact{}, fmt.Errorf("step %s of run %d has no task %s: %w", p.Step, p.RunID, store.FormatPath(path), store.ErrNotFound)
		}
		k.Index, name = i, rest
	} else if step.NumTasks > 1 {
		// A step in a loop: a task per iteration, RUN/STEP/ITERATION/NAME
		// (from 0), and RUN/STEP/NAME is the last iteration's.
		k.Index = step.NumTasks - 1
		if it, rest, ok := strings.Cut(p.Rest, "/"); ok {
			if i, err := strconv.Atoi(it); err == nil && i >= 0 && i < step.NumTasks {
				k.Index, name = i, rest
			}
		}
	}
	a, err := st.Artifact(ctx, k, name)
	if errors.Is(err, store.ErrNotFound) {
		arts, lerr := st.Artifacts(ctx, store.ArtifactFilter{RunID: k.RunID, Step: k.Step, Index: k.Index})
		if lerr == nil {
			have := make([]string, len(arts))
			for i, a := range arts {
				have[i] = a.Name
			}
			hint := "it has none"
			if len(have) > 0 {
				hint = "it has: " + strings.Join(have, ", ")
			}
			return a, fmt.Errorf("task %s has no artifact %q (%s): %w", k, name, hint, store.ErrNotFound)
		}
	}
	return a, err
}

// PathOf formats the canonical path of an artifact.
func PathOf(a store.Artifact, foreach bool) string {
	if foreach {
		return fmt.Sprintf("%d/%s/%d/%s", a.RunID, a.Step, a.Index, a.Name)
	}
	return fmt.Sprintf("%d/%s/%s", a.RunID, a.Step, a.Name)
}

// PathIn formats the canonical path of an artifact of step st: an index
// per foreach level the step sits in, or the iteration of a step that ran
// in a loop more than once.
func PathIn(a store.Artifact, st store.Step) string {
	shape := st.TaskShape()
	if shape.Level() == 0 {
		if st.NumTasks > 1 {
			return fmt.Sprintf("%d/%s/%d/%s", a.RunID, a.Step, a.Index, a.Name)
		}
		return fmt.Sprintf("%d/%s/%s", a.RunID, a.Step, a.Name)
	}
	// A step in a loop keeps its earlier iterations' tasks before the
	// current shape's.
	if base := st.NumTasks - shape.Count(); a.Index >= base {
		if p, ok := shape.Path(a.Index - base); ok {
			return fmt.Sprintf("%d/%s/%s/%s", a.RunID, a.Step, store.FormatPath(p), a.Name)
		}
	}
	return fmt.Sprintf("%d/%s/%d/%s", a.RunID, a.Step, a.Index, a.Name)
}
