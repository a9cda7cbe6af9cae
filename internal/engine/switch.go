package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// A switch step's task names a case in an artifact when it succeeds
// (checkCase refuses a name that is not a case). When a step that may be
// skipped starts, plan decides for each of its contexts whether it runs:
// a case's step runs where the switch's task chose it; any other step is
// skipped where every need it sees as one task was skipped. Skipped tasks
// are stored as skipped in the batch that creates them, so a coordinator
// that takes the run over reads the same plan.

// checkCase reads the case a switch task wrote among its artifacts.
func (r *runner) checkCase(ctx context.Context, s *stepRun, idx int, arts []store.Artifact) error {
	sw := s.def.Switch
	name := sw.CaseArtifact()
	keys := make([]string, 0, len(sw.Cases))
	for k := range sw.Cases {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, a := range arts {
		if a.Name != name {
			continue
		}
		if a.Size > 1024 {
			return fmt.Errorf("switch: %s holds %d bytes: write only the case to take (one of: %s)", name, a.Size, strings.Join(keys, ", "))
		}
		b, err := r.e.blobs.Read(ctx, a.Digest)
		if err != nil {
			return fmt.Errorf("switch: read %s: %w", name, err)
		}
		c := strings.TrimSpace(string(b))
		if _, ok := sw.Cases[c]; !ok {
			return fmt.Errorf("switch: the task wrote case %q to %s, which is none of the cases: %s", c, name, strings.Join(keys, ", "))
		}
		// Kept for the coordinator in this process (choice); another
		// reads it from the store.
		r.shapeMu.Lock()
		if s.choices == nil {
			s.choices = map[int]string{}
		}
		s.choices[idx] = c
		r.shapeMu.Unlock()
		return nil
	}
	return fmt.Errorf("switch: the task wrote no %s: write the case to take (one of: %s) to $BATON_OUTPUT_DIR/%s", name, strings.Join(keys, ", "), name)
}

// mayBeSkipped reports whether s is a case of a switch or comes after one
// (newRunner works it out once: walking the needs each time costs as many
// steps as there are paths through the flow, 2^30 for 30 diamonds).
func (r *runner) mayBeSkipped(s *stepRun) bool { return s.mayskip }

// skippedOf returns which tasks of a started step were skipped (nil when
// none can be), read from the store once if this process did not start it.
func (r *runner) skippedOf(ctx context.Context, s *stepRun) ([]bool, error) {
	if !r.mayBeSkipped(s) {
		return nil, nil
	}
	r.shapeMu.Lock()
	known := s.skipKnown
	r.shapeMu.Unlock()
	if known {
		return s.skipped, nil
	}
	tasks, err := r.e.st.Tasks(ctx, r.run.ID, s.def.Name)
	if err != nil {
		return nil, err
	}
	skipped := make([]bool, s.n)
	for _, t := range tasks {
		if t.Index < len(skipped) && t.Status == store.TaskSkipped {
			skipped[t.Index] = true
		}
	}
	r.shapeMu.Lock()
	s.skipped, s.skipKnown = skipped, true
	r.shapeMu.Unlock()
	return skipped, nil
}

// choice returns the case task idx of switch step s took.
func (r *runner) choice(ctx context.Context, s *stepRun, idx int) (string, error) {
	r.shapeMu.Lock()
	c, ok := s.choices[idx]
	r.shapeMu.Unlock()
	if ok {
		return c, nil
	}
	name := s.def.Switch.CaseArtifact()
	a, err := r.e.st.Artifact(ctx, store.TaskKey{RunID: r.run.ID, Step: s.def.Name, Index: idx}, name)
	if err != nil {
		return "", fmt.Errorf("switch %s: %w", s.def.Name, err)
	}
	b, err := r.e.blobs.Read(ctx, a.Digest)
	if err != nil {
		return "", fmt.Errorf("switch %s: %w", s.def.Name, err)
	}
	c = strings.TrimSpace(string(b))
	r.shapeMu.Lock()
	if s.choices == nil {
		s.choices = map[int]string{}
	}
	s.choices[idx] = c
	r.shapeMu.Unlock()
	return c, nil
}

// skipContext reports whether the tasks of s in context c (a path of the
// level s runs in, or for a foreach step the level it fans out from) are
// skipped.
func (r *runner) skipContext(ctx context.Context, s *stepRun, c []int) (bool, error) {
	seen, skippedAll := 0, true
	for _, up := range s.needs {
		if len(up.scope) > len(c) {
			// Joined: a join runs on what there is (an empty foreach
			// included), unless what it joins here was skipped.
			sk, err := r.joinedSkipped(ctx, up, c)
			if err != nil {
				return false, err
			}
			seen++
			skippedAll = skippedAll && sk
			continue
		}
		shape, base, err := r.placeOf(ctx, up)
		if err != nil {
			return false, err
		}
		idx, ok := shape.Index(c[:len(up.scope)])
		if !ok {
			return false, fmt.Errorf("step %s has no task %s", up.def.Name, store.FormatPath(c[:len(up.scope)]))
		}
		idx += base
		skipped, err := r.skippedOf(ctx, up)
		if err != nil {
			return false, err
		}
		taskSkipped := skipped != nil && skipped[idx]
		if sw := up.def.Switch; sw != nil && slices.Contains(sw.Targets(), s.def.Name) {
			// A case's step: it runs only where the switch chose it.
			if taskSkipped {
				return true, nil
			}
			c, err := r.choice(ctx, up, idx)
			if err != nil {
				return false, err
			}
			if sw.Cases[c] != s.def.Name {
				return true, nil
			}
		}
		seen++
		skippedAll = skippedAll && taskSkipped
	}
	return seen > 0 && skippedAll, nil
}

// joinedSkipped reports whether the tasks of up under context c, one level
// above up's, were skipped: a foreach step's where its fan-out from c was
// (a foreach case not chosen fans out nothing), a step in up's level where
// each of its tasks under c was, or where there are none because the
// level's foreach step's fan-out from c was skipped. An empty foreach that
// ran is not skipped: its join runs on nothing, as it always has.
func (r *runner) joinedSkipped(ctx context.Context, up *stepRun, c []int) (bool, error) {
	if up.status == store.TaskSkipped {
		return true, nil
	}
	if !r.mayBeSkipped(up) {
		return false, nil
	}
	if up.foreach {
		return r.skipContext(ctx, up, c)
	}
	shape, base, err := r.placeOf(ctx, up)
	if err != nil {
		return false, err
	}
	lo, hi, ok := shape.Children(c)
	if !ok {
		return false, fmt.Errorf("step %s has no tasks under %s", up.def.Name, store.FormatPath(c))
	}
	if lo == hi {
		return r.skipContext(ctx, r.byName[up.scope[len(up.scope)-1]], c)
	}
	skipped, err := r.skippedOf(ctx, up)
	if err != nil {
		return false, err
	}
	for i := base + lo; i < base+hi; i++ {
		if skipped == nil || !skipped[i] {
			return false, nil
		}
	}
	return true, nil
}

// plan returns which of the tasks of s skip (nil: none), and whether all
// of them do (a step with no task runs, as an empty foreach does).
func (r *runner) plan(ctx context.Context, s *stepRun, shape store.Shape) ([]bool, bool, error) {
	if !r.mayBeSkipped(s) || s.foreach {
		// A foreach step skips by fanning out nothing where its context
		// is skipped (fanOut).
		return nil, false, nil
	}
	paths := shape.Paths()
	skip := make([]bool, len(paths))
	n := 0
	for i, p := range paths {
		sk, err := r.skipContext(ctx, s, p)
		if err != nil {
			return nil, false, err
		}
		if sk {
			skip[i] = true
			n++
		}
	}
	if n == 0 {
		return nil, false, nil
	}
	return skip, n == len(paths), nil
}

// skipChanges records the skipped tasks of s as such. skip is by index in
// the iteration that starts at base (a step in a loop keeps the tasks of
// its earlier iterations before it).
func skipChanges(runID int64, s *stepRun, skip []bool, base int, at time.Time) []store.TaskChange {
	var out []store.TaskChange
	for i, sk := range skip {
		if sk {
			out = append(out, store.TaskChange{TaskKey: store.TaskKey{RunID: runID, Step: s.def.Name, Index: base + i},
				Status: store.TaskSkipped, FinishedAt: at})
		}
	}
	return out
}

// stepDone reports whether a need's status lets the steps below start.
func stepDone(st store.TaskStatus) bool {
	return st == store.TaskSucceeded || st == store.TaskSkipped
}
