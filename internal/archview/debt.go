package archview

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/baton-ml/baton/internal/store"
)

// Severities, most urgent first.
const (
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// Finding is one entry of the debt register.
type Finding struct {
	Severity string
	Rule     string
	Item     string
	Action   string
}

// Rule derives findings from a snapshot.
type Rule struct {
	ID       string
	Severity string
	What     string
	Action   string
	check    func(*Snapshot) []string // the items it fires on
}

// Rules lists the debt rules.
func Rules() []Rule {
	return []Rule{
		{"production-without-decision", High, "a production model version has no AI decision record on any transition",
			"record one: `baton model transition ... --decision FILE` (alternatives, data, fairness, lifetime, retraining triggers)", prodWithoutDecision},
		{"trigger-without-contract", High, "a flow triggers on, joins or waits for a signal that has no contract",
			"declare the signal's contract (a signals file) so publishers are checked", triggerWithoutContract},
		{"experiment-without-guardrails", High, "an experiment has no guardrails, so nothing pauses it when it harms",
			"add guardrails (metric, direction, max_degradation)", experimentWithoutGuardrails},
		{"endpoint-without-rollout", Medium, "an endpoint has no rollout config: canaries roll out on defaults nobody chose",
			"set rollout: stages, interval, min_requests and a judge", endpointWithoutRollout},
		{"endpoint-without-confidence-gate", Medium, "an endpoint serves any answer the model gives: no min_confidence",
			"set min_confidence so low-confidence answers go to the fallback", endpointWithoutGate},
		{"feature-without-freshness-sla", Medium, "a streaming feature has no freshness_sla, so staleness is never detected",
			"set freshness_sla (and stale_signal to be told)", featureWithoutSLA},
		{"training-set-without-gates", Medium, "a training_set step computes features none of which has a quality gate",
			"add quality checks (not_null_rate, range, drift) with block or warn", trainingSetWithoutGates},
		{"model-without-lineage", Medium, "a model version records no training flow: it cannot be reproduced or traced",
			"register versions from run artifacts of a flow (`baton model register --artifact RUN/STEP/NAME`)", modelWithoutLineage},
		{"feature-without-gates", Low, "a feature definition has no quality gates",
			"add quality checks to the feature", featureWithoutGates},
		{"contract-without-publisher", Low, "a signal contract no flow publishes and that was never recorded",
			"publish it from a step, name its external publisher, or delete the contract", contractWithoutPublisher},
		{"contract-without-subscriber", Low, "a signal contract no flow subscribes to",
			"subscribe a flow (trigger, join or wait), or delete the contract", contractWithoutSubscriber},
	}
}

// Findings runs every rule, most severe first, then by rule and item.
func Findings(s *Snapshot) []Finding {
	var out []Finding
	for _, r := range Rules() {
		for _, item := range r.check(s) {
			out = append(out, Finding{Severity: r.Severity, Rule: r.ID, Item: item, Action: r.Action})
		}
	}
	rank := map[string]int{High: 0, Medium: 1, Low: 2}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(rank[a.Severity]-rank[b.Severity], strings.Compare(a.Rule, b.Rule), strings.Compare(a.Item, b.Item))
	})
	return out
}

func debtView(s *Snapshot) string {
	var d doc
	fs := Findings(s)
	count := map[string]int{}
	for _, f := range fs {
		count[f.Severity]++
	}
	d.line("%d findings: %d high, %d medium, %d low. Each comes from a rule over the store; fix the item and regenerate to clear it.",
		len(fs), count[High], count[Medium], count[Low])
	d.blank()
	var rows [][]string
	for _, f := range fs {
		rows = append(rows, []string{f.Severity, f.Item, f.Rule, f.Action})
	}
	d.table([]string{"severity", "item", "rule", "what to do"}, rows)
	d.line("## Rules")
	d.blank()
	var rrows [][]string
	for _, r := range Rules() {
		rrows = append(rrows, []string{r.ID, r.Severity, r.What})
	}
	d.table([]string{"rule", "severity", "fires when"}, rrows)
	return d.String()
}

func prodWithoutDecision(s *Snapshot) []string {
	var out []string
	for _, m := range s.Models {
		for _, v := range m.Versions {
			if v.State == store.ModelProduction && !v.HasDecision() {
				out = append(out, fmt.Sprintf("model %s v%d", m.Name, v.Version))
			}
		}
	}
	return out
}

func modelWithoutLineage(s *Snapshot) []string {
	var out []string
	for _, m := range s.Models {
		for _, v := range m.Versions {
			if v.State != store.ModelArchived && v.TrainingFlow() == "" {
				out = append(out, fmt.Sprintf("model %s v%d", m.Name, v.Version))
			}
		}
	}
	return out
}

func endpointWithoutRollout(s *Snapshot) []string {
	var out []string
	for _, e := range s.Endpoints {
		if e.Rollout == nil {
			out = append(out, "endpoint "+e.Name)
		}
	}
	return out
}

func endpointWithoutGate(s *Snapshot) []string {
	var out []string
	for _, e := range s.Endpoints {
		if e.MinConfidence <= 0 {
			out = append(out, "endpoint "+e.Name)
		}
	}
	return out
}

func featureWithoutSLA(s *Snapshot) []string {
	var out []string
	if s.Features == nil {
		return nil
	}
	for _, n := range s.Features.FeatureNames() {
		if s.Features.Features[n].FreshnessSLA <= 0 {
			out = append(out, "feature "+n)
		}
	}
	return out
}

func featureWithoutGates(s *Snapshot) []string {
	var out []string
	if s.Features == nil {
		return nil
	}
	for _, n := range s.Features.FeatureNames() {
		if len(s.Features.Features[n].Quality) == 0 {
			out = append(out, "feature "+n)
		}
	}
	return out
}

// trainingSetWithoutGates fires on a training_set step when none of the
// features it computes (all registered ones if it names none) has a gate:
// a bad training set would then reach training unchecked.
func trainingSetWithoutGates(s *Snapshot) []string {
	var out []string
	for _, fd := range s.Flows {
		for _, st := range fd.Flow.Steps {
			ts := st.TrainingSet
			if ts == nil {
				continue
			}
			names := ts.Features
			if len(names) == 0 && s.Features != nil {
				names = s.Features.FeatureNames()
			}
			gated := s.Features != nil && slices.ContainsFunc(names, func(n string) bool {
				f := s.Features.Features[n]
				return f != nil && len(f.Quality) > 0
			})
			if !gated {
				out = append(out, fmt.Sprintf("flow %s / step %s", fd.Flow.Name, st.Name))
			}
		}
	}
	return out
}

func experimentWithoutGuardrails(s *Snapshot) []string {
	var out []string
	for _, e := range s.Experiments {
		if len(e.Spec.Guardrails) == 0 && e.Status != store.ExperimentStopped {
			out = append(out, "experiment "+e.Spec.Name)
		}
	}
	return out
}

func contractWithoutPublisher(s *Snapshot) []string {
	ix := s.signalIndex()
	var out []string
	for _, n := range s.Contracts.Names() {
		if len(ix.pubs[n]) == 0 && s.Observed[n].Count == 0 {
			out = append(out, "signal "+n)
		}
	}
	return out
}

func contractWithoutSubscriber(s *Snapshot) []string {
	ix := s.signalIndex()
	var out []string
	for _, n := range s.Contracts.Names() {
		if len(ix.subs[n]) == 0 {
			out = append(out, "signal "+n)
		}
	}
	return out
}

func triggerWithoutContract(s *Snapshot) []string {
	ix := s.signalIndex()
	var out []string
	for _, sig := range slices.Sorted(maps.Keys(ix.subs)) {
		if _, ok := s.Contracts[sig]; ok {
			continue
		}
		for _, u := range ix.subs[sig] {
			out = append(out, fmt.Sprintf("flow %s %s on signal %s", u.Flow, u.How, sig))
		}
	}
	return out
}
