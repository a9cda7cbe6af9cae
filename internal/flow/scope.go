package flow

import (
	"maps"
	"slices"
	"strings"
)

// A step's scope is the chain of foreach steps its tasks sit in, outermost
// first: empty for a step that runs once per run. A foreach step opens a
// level below the scope of the step its items come from, so a foreach over
// an artifact of a step's tasks in a foreach nests (one task per item of
// each of those tasks). Any other step runs in the deepest level of what
// it needs, once per task of it, or joins that level and runs once per
// task of the level above (join: true; by default when it needs the
// level's foreach step itself, as a step after a foreach always has).
// Steps needed from the same
// scope or an outer one are seen as one task (<step>/<name> in
// BATON_INPUT_DIR); steps one level deeper are joined (<step>/<index>/<name>).

// ForeachSource names the step and artifact a foreach step reads its items
// from; step is "" for inline items. It assumes a valid flow.
func (s *Step) ForeachSource() (step, name string) {
	fe := s.Foreach
	if fe == nil || fe.Artifact == "" {
		return "", ""
	}
	if st, file, ok := strings.Cut(fe.Artifact, "/"); ok && slices.Contains(s.Needs, st) {
		return st, file
	}
	if len(s.Needs) == 1 {
		return s.Needs[0], fe.Artifact
	}
	return "", fe.Artifact
}

// Scopes returns each step's scope. It assumes needs name known steps with
// no cycle; checkScopes reports the rules it relies on.
func (f *Flow) Scopes() map[string][]string {
	scopes, _ := f.scopes()
	return scopes
}

// scopeProblem is one broken rule of scopes, at steps[i].
type scopeProblem struct {
	step  int
	field string
	msg   string
}

func (f *Flow) scopes() (map[string][]string, []scopeProblem) {
	idx := make(map[string]int, len(f.Steps))
	for i := range f.Steps {
		idx[f.Steps[i].Name] = i
	}
	scopes := make(map[string][]string, len(f.Steps))
	var problems []scopeProblem
	for _, s := range f.TopoOrder() {
		i := idx[s.Name]
		// The level the step sits in: a foreach step's is its source's;
		// any other step's is the level above the deepest of its needs.
		var parent []string
		if s.Foreach != nil {
			if src, _ := s.ForeachSource(); src != "" {
				parent = scopes[src]
			}
		} else {
			// The deepest level among the needs; a step joins it when
			// told to, or by default when it needs that level's foreach
			// step itself (what a step after a foreach always did).
			var deepest []string
			joinsForeach := true
			for _, n := range s.Needs {
				sc := scopes[n]
				if len(sc) > len(deepest) {
					deepest, joinsForeach = sc, true
				}
				if len(sc) == len(deepest) && len(sc) > 0 && sc[len(sc)-1] != n {
					joinsForeach = false // a step running in the level: stay in it
				}
			}
			join := joinsForeach && len(deepest) > 0
			if s.Join != nil {
				join = *s.Join
			}
			// A switch's case runs for each task that chose it: in the
			// switch's level, never joining it.
			for _, n := range s.Needs {
				if up := f.Steps[idx[n]].Switch; up != nil && slices.Contains(up.Targets(), s.Name) && len(scopes[n]) == len(deepest) {
					join = false
				}
			}
			switch {
			case join && len(deepest) == 0:
				problems = append(problems, scopeProblem{i, "join", "step " + s.Name +
					" joins, but none of its needs runs in a foreach: remove join, or add the foreach step it should join to needs"})
			case join:
				parent = deepest[:len(deepest)-1]
			default:
				parent = deepest
			}
		}
		// Each need is seen from that level: one task of it (a need in
		// the level or above it) or its tasks under the level (a need one
		// level below, joined). Its foreach steps must be the level's.
		bad := false
		for _, n := range s.Needs {
			sc, ok := scopes[n]
			if !ok {
				continue // unknown need: reported elsewhere
			}
			switch {
			case len(sc) > len(parent)+1:
				what := "its items come from"
				if s.Foreach == nil {
					what = "it joins"
				}
				problems = append(problems, scopeProblem{i, "needs", "step " + s.Name + " needs " + n + ", which is in foreach " +
					strings.Join(sc, " > ") + ", more than one level below the level " + what +
					": a step joins one level at a time, so add a step that joins " + sc[len(sc)-1] + " first"})
				bad = true
			case len(sc) == len(parent)+1 && !isPrefix(sc[:len(sc)-1], parent),
				len(sc) <= len(parent) && !isPrefix(sc, parent):
				problems = append(problems, scopeProblem{i, "needs", "step " + s.Name + " runs in foreach " + levelName(parent) +
					" but needs " + n + ", which is in foreach " + levelName(sc) +
					": a step's needs must come from one chain of nested foreach steps; join " + n + "'s level first"})
				bad = true
			}
		}
		if bad {
			scopes[s.Name] = nil
			continue
		}
		scope := slices.Clone(parent)
		if s.Foreach != nil {
			scope = append(scope, s.Name)
		}
		scopes[s.Name] = scope
	}
	return scopes, problems
}

// levelName names a scope for a message.
func levelName(sc []string) string {
	if len(sc) == 0 {
		return "(none: once per run)"
	}
	return strings.Join(sc, " > ")
}

// isPrefix reports whether a is a prefix of b.
func isPrefix(a, b []string) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}

// checkScopes reports needs that cross foreach levels (see Scopes).
func (f *Flow) checkScopes(l *errorList) {
	scopes, problems := f.scopes()
	for _, p := range problems {
		l.add(indexPath("steps", p.step)+"."+p.field, "%s", p.msg)
	}
	// A subflow's ${input.STEP/NAME} is one artifact: not of a need the
	// step joins, whose tasks each wrote one.
	for i := range f.Steps {
		s := &f.Steps[i]
		if s.Subflow == nil {
			continue
		}
		level := scopes[s.Name]
		if s.Foreach != nil && len(level) > 0 {
			level = level[:len(level)-1]
		}
		for _, k := range slices.Sorted(maps.Keys(s.Subflow.Params)) {
			ref, ok := SubflowRef(s.Subflow.Params[k])
			if !ok || ref.Kind != "input" || !slices.Contains(s.Needs, ref.Step) {
				continue
			}
			if sc := scopes[ref.Step]; len(sc) > len(level) {
				l.add(keyPath(indexPath("steps", i)+".subflow.params", k), "%s: step %s joins the tasks of %s (foreach %s), each of which writes its own %s: a param is one artifact, so write it from a step that joins them and name that step",
					s.Subflow.Params[k], s.Name, ref.Step, strings.Join(sc, " > "), ref.Name)
			}
		}
	}
	// A loop runs once per run: none of its steps runs in a foreach level.
	for i := range f.Steps {
		s := &f.Steps[i]
		if s.Switch == nil {
			continue
		}
		for _, t := range s.Switch.Targets() {
			for _, b := range f.LoopBody(s.Name, t) {
				if len(scopes[b]) > 0 {
					l.add(indexPath("steps", i)+".switch.cases", "the loop back to %q runs step %q, which runs in foreach %s: a loop's steps run once per run, outside any foreach",
						t, b, strings.Join(scopes[b], " > "))
				}
			}
		}
	}
}
