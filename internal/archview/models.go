package archview

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// lastTransitions is how many transitions per version the models view
// shows: the latest ones tell the current story.
const lastTransitions = 3

func modelsView(s *Snapshot) string {
	var d doc
	if len(s.Models) == 0 {
		d.line("_No models registered._")
		return d.String()
	}
	for _, m := range s.Models {
		d.line("## %s", m.Name)
		d.blank()
		d.line("Served by: %s", orDash(s.endpointsOf(m.Name)))
		d.blank()
		var rows [][]string
		for _, v := range m.Versions {
			rows = append(rows, []string{fmt.Sprint(v.Version), string(v.State), trainedBy(v), v.Lineage.TrainingSetDigest,
				strings.Join(v.Lineage.FeatureVersions, ", "), metrics(v.Metrics), strings.Join(sortedCopy(v.Aliases), ", "),
				transitions(v.Transitions), yesNo(v.HasDecision())})
		}
		d.table([]string{"version", "state", "trained by", "training-set digest", "feature versions", "metrics", "aliases",
			"latest transitions", "decision record"}, rows)
	}
	return d.String()
}

// endpointsOf lists the endpoints whose model (or fallback model) is model.
func (s *Snapshot) endpointsOf(model string) string {
	var out []string
	for _, e := range s.Endpoints {
		switch model {
		case e.Model:
			out = append(out, e.Name)
		case e.Fallback.Model:
			out = append(out, e.Name+" (fallback)")
		}
	}
	return strings.Join(out, ", ")
}

func trainedBy(v VersionDef) string {
	f := v.TrainingFlow()
	if f == "" && v.RunID == 0 {
		return ""
	}
	s := fmt.Sprintf("run %d", v.RunID)
	if f != "" {
		s += " of " + f
		if fv := max(v.FlowVersion, v.Lineage.FlowVersion); fv > 0 {
			s += fmt.Sprintf(" v%d", fv)
		}
	}
	if v.Lineage.Step != "" {
		s += " / " + v.Lineage.Step
	}
	return s
}

func metrics(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+num(m[k]))
	}
	return strings.Join(parts, ", ")
}

func transitions(ts []store.ModelTransition) string {
	var parts []string
	for _, t := range ts[max(0, len(ts)-lastTransitions):] {
		from := t.From
		if from == "" {
			from = "∅"
		}
		parts = append(parts, fmt.Sprintf("%s→%s by %s: %s", from, t.To, t.Actor, t.Reason))
	}
	return strings.Join(parts, "; ")
}

func sortedCopy(ss []string) []string { return slices.Sorted(slices.Values(ss)) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func (s *Snapshot) model(name string) *ModelDef {
	for i := range s.Models {
		if s.Models[i].Name == name {
			return &s.Models[i]
		}
	}
	return nil
}

// live lists a model's versions in the states that take traffic.
func (s *Snapshot) live(model string) []VersionDef {
	m := s.model(model)
	if m == nil {
		return nil
	}
	var out []VersionDef
	for _, v := range m.Versions {
		switch v.State {
		case store.ModelProduction, store.ModelCanary, store.ModelShadow:
			out = append(out, v)
		}
	}
	return out
}

func boundaryView(s *Snapshot) string {
	var d doc
	d.line("Where the learned, non-deterministic side meets the deterministic one. Each endpoint answers from a model version behind a timeout and a confidence gate; below the gate or past the timeout the fallback answers.")
	d.blank()
	d.line("## Endpoints")
	d.blank()
	var rows [][]string
	for _, e := range s.Endpoints {
		rows = append(rows, []string{e.Name, e.Model, liveVersions(s.live(e.Model)), gate(e), fallback(e),
			shadowOf(e, s.live(e.Model)), rolloutOf(e, s.Rollouts[e.Name]), s.experimentsOn(e.Name)})
	}
	d.table([]string{"endpoint", "model", "non-deterministic side (version: state, kind)", "gate", "deterministic side (fallback)",
		"shadow", "rollout", "experiments"}, rows)
	for _, e := range s.Endpoints {
		d.line("```mermaid")
		d.line("flowchart LR")
		d.line("  req([request]) --> gate{%s}", mlabel("timeout "+timeoutOf(e).String()+confText(e)))
		d.line("  gate -->|model answers| m[%s]", mlabel(e.Model+" (learned)"))
		d.line("  gate -->|timeout / low confidence / error| fb[%s]", mlabel(fallback(e)+" (deterministic)"))
		d.line("```")
		d.blank()
	}
	d.line("## Flows: learned side vs. plain steps")
	d.blank()
	d.line("A flow is on the learned side when a registered model version records it as its training flow, or one of its steps builds a training set.")
	d.blank()
	trained := s.trainingFlows()
	var frows [][]string
	for _, fd := range s.Flows {
		var learned, plain []string
		for _, st := range fd.Flow.Steps {
			if st.TrainingSet != nil || trained[fd.Flow.Name][st.Name] {
				learned = append(learned, st.Name)
			} else {
				plain = append(plain, st.Name)
			}
		}
		frows = append(frows, []string{fd.Flow.Name, strings.Join(learned, ", "), strings.Join(plain, ", "), s.modelsTrainedBy(fd.Flow.Name)})
	}
	d.table([]string{"flow", "learned steps (train / training set / register)", "plain steps", "models registered from it"}, frows)
	return d.String()
}

// trainingFlows maps flow → step → true for the steps model versions
// record as where they came from.
func (s *Snapshot) trainingFlows() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range s.Models {
		for _, v := range m.Versions {
			f := v.TrainingFlow()
			if f == "" {
				continue
			}
			if out[f] == nil {
				out[f] = map[string]bool{}
			}
			if v.Lineage.Step != "" {
				out[f][v.Lineage.Step] = true
			}
		}
	}
	return out
}

func (s *Snapshot) modelsTrainedBy(flowName string) string {
	var out []string
	for _, m := range s.Models {
		for _, v := range m.Versions {
			if v.TrainingFlow() == flowName {
				out = append(out, fmt.Sprintf("%s v%d", m.Name, v.Version))
			}
		}
	}
	return strings.Join(out, ", ")
}

func liveVersions(vs []VersionDef) string {
	var parts []string
	for _, v := range vs {
		kind := v.Kind
		if kind == "" {
			kind = "kind not read"
		}
		parts = append(parts, fmt.Sprintf("v%d: %s, %s", v.Version, v.State, kind))
	}
	if len(parts) == 0 {
		return "no version in production, canary or shadow"
	}
	return strings.Join(parts, "; ")
}

// timeoutOf is the endpoint's timeout with serve's default applied, which
// is what it actually waits.
func timeoutOf(e serve.Endpoint) time.Duration {
	if e.Timeout > 0 {
		return e.Timeout.D()
	}
	return 100 * time.Millisecond
}

func confText(e serve.Endpoint) string {
	if e.MinConfidence > 0 {
		return ", confidence ≥ " + num(e.MinConfidence)
	}
	return ""
}

func gate(e serve.Endpoint) string {
	s := "timeout " + timeoutOf(e).String()
	if e.Timeout <= 0 {
		s += " (default)"
	}
	if e.MinConfidence > 0 {
		return s + ", min_confidence " + num(e.MinConfidence)
	}
	return s + ", no confidence gate"
}

func fallback(e serve.Endpoint) string {
	var parts []string
	if e.Fallback.Model != "" {
		v := e.Fallback.Version
		if v == "" {
			v = "production"
		}
		parts = append(parts, "model "+e.Fallback.Model+"@"+v)
	}
	if e.Fallback.Static != nil {
		parts = append(parts, fmt.Sprintf("static %v", e.Fallback.Static))
	}
	return strings.Join(parts, ", then ")
}

// shadowOf says what shadow traffic the endpoint really sends: to which
// versions, or why none.
func shadowOf(e serve.Endpoint, live []VersionDef) string {
	var vs []string
	for _, v := range live {
		if v.State == store.ModelShadow {
			vs = append(vs, fmt.Sprintf("v%d", v.Version))
		}
	}
	switch {
	case e.Shadow != nil && !*e.Shadow && len(vs) > 0:
		return "off (" + strings.Join(vs, ", ") + " in state shadow get no copies)"
	case e.Shadow != nil && !*e.Shadow:
		return "off"
	case len(vs) == 0:
		return "none (no version in state shadow)"
	}
	return "copies to " + strings.Join(vs, ", ")
}

func rolloutOf(e serve.Endpoint, rs []store.Rollout) string {
	s := "defaults (not configured)"
	if r := e.Rollout; r != nil {
		var st []string
		for _, x := range r.Stages {
			st = append(st, num(x)+"%")
		}
		s = "stages " + orDash(strings.Join(st, " → "))
		if r.Interval > 0 {
			s += ", interval " + r.Interval.D().String()
		}
		if r.Judge != nil {
			s += ", judge on " + strings.Join(slices.Sorted(maps.Keys(r.Judge.Metrics)), ", ")
		}
	}
	if len(rs) > 0 {
		r := rs[0] // newest first
		s += fmt.Sprintf("; last rollout v%d vs v%d: %s at stage %d", r.CanaryVersion, r.BaselineVersion, r.Status, r.Stage)
	}
	return s
}

func (s *Snapshot) experimentsOn(endpoint string) string {
	var out []string
	for _, e := range s.Experiments {
		if e.Spec.Endpoint == endpoint {
			out = append(out, fmt.Sprintf("%s (%s)", e.Spec.Name, e.Status))
		}
	}
	return strings.Join(out, ", ")
}
