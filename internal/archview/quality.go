package archview

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is a quality attribute scenario in the ATAM form RAD-AI uses.
type Scenario struct {
	Attribute, Source, Stimulus, Artifact, Environment, Response, Measure string
}

// Scenarios derives one scenario per configured target, in a fixed order:
// features, endpoints, rollouts, experiments, flows.
func Scenarios(s *Snapshot) []Scenario {
	var out []Scenario
	out = append(out, featureScenarios(s)...)
	out = append(out, endpointScenarios(s)...)
	out = append(out, experimentScenarios(s)...)
	out = append(out, flowScenarios(s)...)
	return out
}

func qualityView(s *Snapshot) string {
	var d doc
	if len(s.Scenarios) > 0 {
		d.line("### Measured by the server")
		d.blank()
		d.line("Each declared quality scenario (a monitor of kind `scenario`) as its newest evaluation measured it from what happened: pending means a stimulus whose deadline has not come, none that nothing has happened to measure yet. `baton monitor results MONITOR` has every evaluation.")
		d.blank()
		var rows [][]string
		for _, m := range s.Scenarios {
			measured, status, asOf, detail := "-", "not evaluated yet", "-", "-"
			if m.Evaluated {
				ev := m.Evidence
				status, detail, asOf = ev.Status, ev.Detail, m.EvaluatedAt.UTC().Format(time.DateTime)
				if ev.Measured != nil {
					measured = strconv.FormatFloat(*ev.Measured, 'g', 4, 64) + " " + ev.Unit
				}
				if m.Error != "" {
					detail += " (error: " + m.Error + ")"
				}
			}
			target := m.Spec.Target
			if target == "" {
				target = m.Spec.Measure + " within " + m.Spec.Within.String()
			}
			rows = append(rows, []string{m.Spec.ID, target, measured, status, asOf, detail, m.Monitor})
		}
		d.table([]string{"scenario", "target", "measured response", "status", "as of", "detail", "monitor"}, rows)
		d.blank()
		d.line("### Derived from the configured targets")
		d.blank()
	}
	d.line("Each row is derived from a configured target; a target that is not configured has no scenario (see the debt register).")
	d.blank()
	var rows [][]string
	for _, sc := range Scenarios(s) {
		rows = append(rows, []string{sc.Attribute, sc.Source, sc.Stimulus, sc.Artifact, sc.Environment, sc.Response, sc.Measure})
	}
	d.table([]string{"quality", "source", "stimulus", "artifact", "environment", "response", "response measure"}, rows)
	return d.String()
}

func featureScenarios(s *Snapshot) []Scenario {
	if s.Features == nil {
		return nil
	}
	var out []Scenario
	for _, n := range s.Features.FeatureNames() {
		f := s.Features.Features[n]
		if f.FreshnessSLA > 0 {
			resp := "staleness is measured against the SLA"
			if f.StaleSignal {
				resp += "; a feature_stale signal is published"
			}
			out = append(out, Scenario{"freshness", "event source " + f.Source, "events stop arriving or lag",
				"online feature " + n, "streaming ingest", resp, "feature age ≤ " + f.FreshnessSLA.D().String()})
		}
		for _, c := range f.Quality {
			out = append(out, Scenario{"data quality", "batch computation", "a training set or backfill computes " + n,
				"feature " + n, "batch path", "gate " + c.Check + " → " + c.Action, bounds(c.Min, c.Max)})
		}
	}
	return out
}

func bounds(lo, hi *float64) string {
	var parts []string
	if lo != nil {
		parts = append(parts, "≥ "+num(*lo))
	}
	if hi != nil {
		parts = append(parts, "≤ "+num(*hi))
	}
	return orDash(strings.Join(parts, " and "))
}

func endpointScenarios(s *Snapshot) []Scenario {
	var out []Scenario
	for _, e := range s.Endpoints {
		art := "endpoint " + e.Name + " (model " + e.Model + ")"
		out = append(out, Scenario{"latency / availability", "client request", "the model is slow or fails", art, "normal operation",
			"answer from the fallback: " + fallback(e), "model answer within " + timeoutOf(e).String() + ", else fallback"})
		if e.MinConfidence > 0 {
			out = append(out, Scenario{"correctness", "client request", "the model answers with low confidence", art, "normal operation",
				"answer from the fallback: " + fallback(e), "confidence ≥ " + num(e.MinConfidence) + " served, below it fallback"})
		}
		if r := e.Rollout; r != nil {
			var st []string
			for _, x := range r.Stages {
				st = append(st, num(x)+"%")
			}
			measure := "stages " + orDash(strings.Join(st, " → "))
			if r.Interval > 0 {
				measure += " every " + r.Interval.D().String()
			}
			if r.MinRequests > 0 {
				measure += fmt.Sprintf(", ≥ %d requests per side", r.MinRequests)
			}
			if r.MaxHolds > 0 {
				measure += fmt.Sprintf(", rollback after %d holds", r.MaxHolds)
			}
			judge := "default judge"
			if r.Judge != nil {
				judge = "judge on " + strings.Join(slices.Sorted(maps.Keys(r.Judge.Metrics)), ", ")
			}
			out = append(out, Scenario{"safe change", "model registry", "a canary version is rolled out", art, "production traffic",
				judge + " advances, holds or rolls back", measure})
		}
	}
	return out
}

func experimentScenarios(s *Snapshot) []Scenario {
	var out []Scenario
	for _, e := range s.Experiments {
		spec := e.Spec.WithDefaults()
		for _, g := range spec.Guardrails {
			out = append(out, Scenario{"safety", "experiment " + spec.Name, "variant degrades " + g.Metric + " (" + g.Direction + " is harm)",
				"experiment " + spec.Name, "live A/B test", "the guardrail monitor pauses the experiment",
				fmt.Sprintf("degradation ≤ %s vs control, checked every %s at α=%s", num(g.MaxDegradation), spec.Interval.D(), num(spec.Alpha))})
		}
	}
	return out
}

func flowScenarios(s *Snapshot) []Scenario {
	var out []Scenario
	for _, fd := range s.Flows {
		for _, st := range fd.Flow.Steps {
			art := "flow " + fd.Flow.Name + " / step " + st.Name
			if n := st.Retry.MaxAttempts(); n > 1 {
				out = append(out, Scenario{"reliability", "task", "an attempt fails", art, "normal operation",
					"retry with backoff", retryOf(st.Retry)})
			}
			if st.Timeout > 0 {
				out = append(out, Scenario{"latency", "task", "an attempt hangs", art, "normal operation",
					"the attempt is terminated (SIGTERM, then SIGKILL) and counts as failed", "attempt ≤ " + time.Duration(st.Timeout).String()})
			}
			if st.Wait != nil && st.Wait.Timeout > 0 {
				out = append(out, Scenario{"availability", "upstream publisher", "signal " + st.Wait.Signal + " does not come", art,
					"waiting step", "the step fails", "wait ≤ " + time.Duration(st.Wait.Timeout).String()})
			}
		}
	}
	return out
}
