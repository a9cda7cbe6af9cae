package archview

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
		{"hidden-feedback-loop", High, "a model trains on features of a source whose events respond to an endpoint serving that model (the source's responds_to): it learns from reactions to its own answers",
			"break or correct the loop: log what was served with its propensity and explore (or keep a randomized holdout) so training can correct for it, or train on randomized traffic only; record the loop and its mitigation in the model's decision record",
			hiddenFeedbackLoop},
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
		{"shared-feature-entanglement", Medium, "one feature is in the lineage of serving versions of two or more models: changing its definition changes them all",
			"version the feature per consumer so each model moves on its own, or accept the coupling in the models' decision records; monitor the feature's drift for every model that uses it",
			sharedFeatureEntanglement},
		{"feature-without-gates", Low, "a feature definition has no quality gates",
			"add quality checks to the feature", featureWithoutGates},
		{"contract-without-publisher", Low, "a signal contract no flow publishes and that was never recorded",
			"publish it from a step, name its external publisher, or delete the contract", contractWithoutPublisher},
		{"contract-without-subscriber", Low, "a signal contract no flow subscribes to",
			"subscribe a flow (trigger, join or wait), or delete the contract", contractWithoutSubscriber},
		{"responds-to-unknown-endpoint", Low, "a source's responds_to names an endpoint that is not applied, so no feedback loop through it can be seen",
			"apply the endpoint, or correct the name in the source's responds_to", respondsToUnknownEndpoint},
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
	d.line("%d findings: %d high, %d medium, %d low. Each comes from a rule over the store; fix the item and regenerate to clear it. "+
		"A feedback loop or a shared feature is structure, not a slip: its finding stays while the structure does, as debt carried; "+
		"the decision record says how it is mitigated.",
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

// servedVersion is a model version whose answers an endpoint returns.
type servedVersion struct {
	endpoint string
	fallback bool
	model    string
	v        VersionDef
}

// served lists what each endpoint answers with: its model's production
// and canary versions, and the version of its fallback model it names
// (production by default). Shadow versions answer nobody.
func (s *Snapshot) served() []servedVersion {
	var out []servedVersion
	for _, e := range s.Endpoints {
		if m := s.model(e.Model); m != nil {
			for _, v := range m.Versions {
				if v.State == store.ModelProduction || v.State == store.ModelCanary {
					out = append(out, servedVersion{e.Name, false, m.Name, v})
				}
			}
		}
		if m := s.model(e.Fallback.Model); m != nil && e.Fallback.Model != "" {
			ref := cmp.Or(e.Fallback.Version, string(store.ModelProduction))
			for _, v := range m.Versions {
				if string(v.State) == ref || strconv.Itoa(v.Version) == ref || slices.Contains(v.Aliases, ref) {
					out = append(out, servedVersion{e.Name, true, m.Name, v})
				}
			}
		}
	}
	return out
}

// hiddenFeedbackLoop fires on each (served version, source) where the
// source responds to the endpoint and the version's lineage holds
// features of that source: model → endpoint → source → features → model.
func hiddenFeedbackLoop(s *Snapshot) []string {
	if s.Features == nil {
		return nil
	}
	var out []string
	for _, sv := range s.served() {
		used := sv.v.Features()
		for _, src := range slices.Sorted(maps.Keys(s.Features.Sources)) {
			if !slices.Contains(s.Features.Sources[src].RespondsTo, sv.endpoint) {
				continue
			}
			var fs []string
			for n := range used {
				if f := s.Features.Features[n]; f != nil && f.Source == src {
					fs = append(fs, n)
				}
			}
			if len(fs) == 0 {
				continue
			}
			slices.Sort(fs)
			ep := "endpoint " + sv.endpoint
			if sv.fallback {
				ep += " (fallback)"
			}
			word := "feature"
			if len(fs) > 1 {
				word = "features"
			}
			out = append(out, fmt.Sprintf("model %s v%d → %s → source %s → %s %s → model %s",
				sv.model, sv.v.Version, ep, src, word, strings.Join(fs, ", "), sv.model))
		}
	}
	slices.Sort(out)
	return out
}

// sharedFeatureEntanglement fires on each feature the lineage of serving
// (production, canary, shadow) versions of two or more models holds. The
// feature is named with its version when every one of them recorded the
// same; a training set's features carry none.
func sharedFeatureEntanglement(s *Snapshot) []string {
	type use struct{ model, who, version string }
	uses := map[string][]use{}
	for _, m := range s.Models {
		for _, v := range s.live(m.Name) {
			for n, ver := range v.Features() {
				uses[n] = append(uses[n], use{m.Name, fmt.Sprintf("%s v%d", m.Name, v.Version), ver})
			}
		}
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(uses)) {
		models, whos, versions := map[string]bool{}, []string{}, map[string]bool{}
		for _, u := range uses[n] {
			models[u.model] = true
			whos = append(whos, u.who)
			versions[u.version] = true
		}
		if len(models) < 2 {
			continue
		}
		name := n
		if len(versions) == 1 && !versions[""] {
			name += "@" + slices.Collect(maps.Keys(versions))[0]
		}
		slices.Sort(whos)
		out = append(out, fmt.Sprintf("feature %s used by models %s", name, strings.Join(whos, ", ")))
	}
	return out
}

// respondsToUnknownEndpoint keeps a misspelt or never applied endpoint in
// a responds_to from hiding a loop: apply cannot refuse it, since
// endpoints come after the models that train on the features.
func respondsToUnknownEndpoint(s *Snapshot) []string {
	if s.Features == nil {
		return nil
	}
	applied := map[string]bool{}
	for _, e := range s.Endpoints {
		applied[e.Name] = true
	}
	var out []string
	for _, src := range slices.Sorted(maps.Keys(s.Features.Sources)) {
		for _, ep := range s.Features.Sources[src].RespondsTo {
			if !applied[ep] {
				out = append(out, fmt.Sprintf("source %s responds to endpoint %s", src, ep))
			}
		}
	}
	return out
}
