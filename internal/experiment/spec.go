// Package experiment runs A/B tests as ABlaze does: deterministic, sticky
// allocation of units to variants by hashing, layers whose experiments
// exclude each other while experiments in different layers are
// orthogonal, holdouts, targeting, exposures and metric events, guardrails
// that pause a harmful experiment by themselves, and promotion of a
// winning model version with the evidence in its decision record.
package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Buckets is how finely a layer is divided between its holdout and its
// experiments, and an experiment between its variants.
const Buckets = 10_000

// Spec is one experiment.
type Spec struct {
	Name string `json:"name" yaml:"name"`
	// Layer groups experiments that exclude each other: a unit is in at
	// most one experiment of a layer. Experiments in different layers are
	// orthogonal (independent hashes). Default: a layer of its own.
	Layer string `json:"layer,omitempty" yaml:"layer"`
	// Holdout is the share of the layer's units kept out of every
	// experiment in it (all of the layer's experiments must agree).
	Holdout float64 `json:"holdout,omitempty" yaml:"holdout"`
	// Traffic is the share of the layer's units this experiment takes.
	Traffic  float64   `json:"traffic,omitempty" yaml:"traffic"`
	Variants []Variant `json:"variants" yaml:"variants"`
	// Control names the control variant (default the first).
	Control string `json:"control,omitempty" yaml:"control"`
	// Targeting is a CEL condition over the unit's attributes
	// (attrs.market == "US"); units it excludes are not in the experiment.
	Targeting string `json:"targeting,omitempty" yaml:"targeting"`
	// Endpoint is the serving endpoint whose model version the variants
	// pick.
	Endpoint   string      `json:"endpoint,omitempty" yaml:"endpoint"`
	Metrics    []string    `json:"metrics,omitempty" yaml:"metrics"`
	Guardrails []Guardrail `json:"guardrails,omitempty" yaml:"guardrails"`
	// Interval is how often guardrails are evaluated (default 5m).
	Interval Duration `json:"interval,omitzero" yaml:"interval"`
	// Webhook is called (POST, JSON) when a guardrail pauses the test.
	Webhook string `json:"webhook,omitempty" yaml:"webhook"`
	// Alpha of the guardrails' sequential intervals (default 0.05).
	Alpha float64 `json:"alpha,omitempty" yaml:"alpha"`
	// Decision holds what people say about a promotion of the winner:
	// the decision record's fields that no evidence can fill.
	Decision *DecisionSpec `json:"decision,omitempty" yaml:"decision"`

	// Range is the experiment's buckets in its layer, [lo, hi), set at
	// apply time.
	Range [2]int `json:"range,omitzero" yaml:"-"`
}

// Variant is one arm.
type Variant struct {
	Name   string  `json:"name" yaml:"name"`
	Weight float64 `json:"weight" yaml:"weight"`
	// ModelVersion is the version of the endpoint's model this arm serves
	// (0: what the endpoint serves anyway).
	ModelVersion int `json:"model_version,omitempty" yaml:"model_version"`
}

// DecisionSpec is the human part of the AI decision record a promotion
// writes (the rest comes from the evidence). A field left out stays empty
// in the record, and the promotion says which.
type DecisionSpec struct {
	ExpectedLifetime    string `json:"expected_lifetime,omitempty" yaml:"expected_lifetime"`
	RetrainingTriggers  string `json:"retraining_triggers,omitempty" yaml:"retraining_triggers"`
	FairnessTradeoffs   string `json:"fairness_tradeoffs,omitempty" yaml:"fairness_tradeoffs"`
	RegulatoryRationale string `json:"regulatory_rationale,omitempty" yaml:"regulatory_rationale"`
}

// Guardrail is a metric that must not degrade beyond MaxDegradation
// (relative to control, default 0.005): Direction says which way is harm.
type Guardrail struct {
	Metric         string  `json:"metric" yaml:"metric"`
	Direction      string  `json:"direction" yaml:"direction"` // increase (e.g. errors) or decrease (e.g. minutes)
	MaxDegradation float64 `json:"max_degradation,omitempty" yaml:"max_degradation"`
}

// Duration is written "50ms", "5m" or "7d" in files and API bodies, and
// returned in the same form.
type Duration = dur.Duration

// Defaults.
const (
	DefaultInterval       = 5 * time.Minute
	DefaultMaxDegradation = 0.005
	DefaultAlpha          = 0.05
)

// WithDefaults fills what a spec leaves out.
func (s Spec) WithDefaults() Spec {
	if s.Layer == "" {
		s.Layer = s.Name
	}
	if s.Traffic == 0 {
		s.Traffic = 1 - s.Holdout
	}
	if s.Control == "" && len(s.Variants) > 0 {
		s.Control = s.Variants[0].Name
	}
	if s.Interval <= 0 {
		s.Interval = Duration(DefaultInterval)
	}
	if s.Alpha == 0 {
		s.Alpha = DefaultAlpha
	}
	for i := range s.Guardrails {
		if s.Guardrails[i].MaxDegradation == 0 {
			s.Guardrails[i].MaxDegradation = DefaultMaxDegradation
		}
	}
	return s
}

// allocation is what, when it changes, re-randomizes units: the layer,
// the buckets and the variants' weights.
func (s Spec) allocation() string {
	b, _ := json.Marshal(struct {
		Layer    string
		Holdout  float64
		Range    [2]int
		Variants []Variant
	}{s.Layer, s.Holdout, s.Range, s.Variants})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// File is an experiments file.
type File struct {
	Experiments []Spec `yaml:"experiments"`
}

// EntryName names the experiment in a list of them (flow.Entry).
func (s Spec) EntryName() string { return s.Name }

// Problems checks one experiment; each problem names its field under at.
func (s Spec) Problems(at string) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: at + field, Msg: fmt.Sprintf(format, args...)})
	}
	if !flow.ValidName(s.Name) {
		add(".name", "%q: use lowercase letters, digits, _ and -", s.Name)
	}
	if s.Layer != "" && !flow.ValidName(s.Layer) {
		add(".layer", "%q: use lowercase letters, digits, _ and -", s.Layer)
	}
	if s.Holdout < 0 || s.Holdout >= 1 {
		add(".holdout", "%g: a share in [0, 1)", s.Holdout)
	}
	if s.Traffic < 0 || s.Traffic > 1 || s.Traffic+s.Holdout > 1+1e-9 {
		add(".traffic", "%g: a share in (0, 1], and with the holdout at most 1", s.Traffic)
	}
	if len(s.Variants) < 2 {
		add(".variants", "an experiment needs at least two variants")
	}
	sum := 0.0
	names := map[string]bool{}
	for j, v := range s.Variants {
		if !flow.ValidName(v.Name) {
			add(fmt.Sprintf(".variants[%d].name", j), "%q: use lowercase letters, digits, _ and -", v.Name)
		}
		if names[v.Name] {
			add(fmt.Sprintf(".variants[%d].name", j), "variant %q is declared twice", v.Name)
		}
		names[v.Name] = true
		if v.Weight <= 0 {
			add(fmt.Sprintf(".variants[%d].weight", j), "%g: a weight is positive", v.Weight)
		}
		sum += v.Weight
		if v.ModelVersion < 0 {
			add(fmt.Sprintf(".variants[%d].model_version", j), "must be positive")
		}
	}
	if len(s.Variants) > 0 && math.Abs(sum-1) > 1e-9 {
		add(".variants", "the weights sum to %g, not 1", sum)
	}
	if s.Control != "" && !names[s.Control] {
		add(".control", "%q is not one of the variants", s.Control)
	}
	if s.Targeting != "" {
		if _, err := compileTargeting(s.Targeting); err != nil {
			add(".targeting", "%v", err)
		}
	}
	if s.Endpoint != "" && !flow.ValidName(s.Endpoint) {
		add(".endpoint", "%q is not an endpoint name", s.Endpoint)
	}
	for j, m := range s.Metrics {
		if !flow.ValidName(m) {
			add(fmt.Sprintf(".metrics[%d]", j), "%q is not a metric name", m)
		}
	}
	for j, g := range s.Guardrails {
		p := fmt.Sprintf(".guardrails[%d]", j)
		if !flow.ValidName(g.Metric) {
			add(p+".metric", "%q is not a metric name", g.Metric)
		}
		if g.Direction != "increase" && g.Direction != "decrease" {
			add(p+".direction", "%q: increase (higher is harm, such as errors) or decrease (lower is harm)", g.Direction)
		}
		if g.MaxDegradation < 0 || g.MaxDegradation >= 1 {
			add(p+".max_degradation", "%g: a relative share such as 0.005", g.MaxDegradation)
		}
	}
	if s.Interval < 0 {
		add(".interval", "must be positive")
	}
	if s.Webhook != "" && !strings.HasPrefix(s.Webhook, "http://") && !strings.HasPrefix(s.Webhook, "https://") {
		add(".webhook", "%q is not an http(s) URL", s.Webhook)
	}
	if s.Alpha < 0 || s.Alpha >= 1 {
		add(".alpha", "%g: in (0, 1)", s.Alpha)
	}
	return errs
}

// Applied is one experiment after Apply.
type Applied struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Range   [2]int `json:"range"`
	Changed bool   `json:"changed"`
}

// Apply checks the experiments against each other and what is stored,
// gives each its buckets in its layer (an experiment keeps its range; a
// new one takes the lowest free range of its size), and stores them. A
// problem anywhere stores nothing.
func Apply(ctx context.Context, st Stores, specs []Spec) ([]Applied, error) {
	return (&Doc{flow.NewApplied(specs, "experiment", "experiments")}).Apply(ctx, st)
}

// Apply checks the experiments on their own, against the endpoints and
// models they name, and against each other and what is stored; then it
// gives each its buckets and stores them. A problem anywhere stores
// nothing.
func (d *Doc) Apply(ctx context.Context, st Stores) ([]Applied, error) {
	// Every problem at once: the document's own and its references (a
	// field that did not decode is not looked up).
	refs, err := d.references(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := d.Report(refs); err != nil {
		return nil, err
	}
	stored, err := Load(ctx, st)
	if err != nil {
		return nil, err
	}
	byName := map[string]Spec{}
	for _, s := range stored {
		byName[s.Spec.Name] = s.Spec
	}
	specs := slices.Clone(d.Items)
	for i := range specs {
		specs[i] = specs[i].WithDefaults()
	}
	// The layers as they will be: stored experiments not in this apply,
	// then these.
	type taken struct {
		name string
		r    [2]int
	}
	var errs flow.Errors
	layers := map[string][]taken{}
	holdouts := map[string]float64{}
	applying := map[string]bool{}
	for _, s := range specs {
		applying[s.Name] = true
	}
	for _, s := range stored {
		// A stopped experiment gives its buckets back to its layer (it
		// never serves again), as in GrowthBook or Optimizely.
		if !applying[s.Spec.Name] && s.Status != store.ExperimentStopped {
			layers[s.Spec.Layer] = append(layers[s.Spec.Layer], taken{s.Spec.Name, s.Spec.Range})
			holdouts[s.Spec.Layer] = s.Spec.Holdout
		}
	}
	for i := range specs {
		s := &specs[i]
		at := d.At(i)
		if h, ok := holdouts[s.Layer]; ok && h != s.Holdout {
			errs = append(errs, &flow.Error{Field: at + ".holdout", Msg: fmt.Sprintf("layer %s has holdout %g; every experiment of a layer has the same", s.Layer, h)})
			continue
		}
		holdouts[s.Layer] = s.Holdout
		size := int(math.Round(s.Traffic * Buckets))
		lo := int(math.Round(s.Holdout * Buckets))
		prev, had := byName[s.Name]
		want := [2]int{-1, -1}
		if had && prev.Layer == s.Layer && prev.Range[1]-prev.Range[0] == size {
			want = prev.Range
		}
		ranges := layers[s.Layer]
		slices.SortFunc(ranges, func(a, b taken) int { return a.r[0] - b.r[0] })
		overlaps := func(r [2]int) string {
			for _, t := range ranges {
				if r[0] < t.r[1] && t.r[0] < r[1] {
					return t.name
				}
			}
			return ""
		}
		if want[0] < 0 || overlaps(want) != "" {
			want = [2]int{-1, -1}
			for start := lo; start+size <= Buckets; {
				r := [2]int{start, start + size}
				o := overlaps(r)
				if o == "" {
					want = r
					break
				}
				for _, t := range ranges {
					if t.name == o {
						start = t.r[1]
					}
				}
			}
		}
		if want[0] < 0 {
			var used []string
			for _, t := range ranges {
				used = append(used, fmt.Sprintf("%s %.2f%%", t.name, float64(t.r[1]-t.r[0])/100))
			}
			errs = append(errs, &flow.Error{Field: at + ".traffic", Msg: fmt.Sprintf("layer %s has no free %.2f%% left (holdout %.2f%%; taken: %s): experiments of a layer may not overlap",
				s.Layer, s.Traffic*100, s.Holdout*100, strings.Join(used, ", "))})
			continue
		}
		s.Range = want
		layers[s.Layer] = append(layers[s.Layer], taken{s.Name, want})
	}
	if err := d.Place(errs); err != nil {
		return nil, err
	}
	out := make([]Applied, 0, len(specs))
	for _, s := range specs {
		b, err := json.Marshal(s)
		if err != nil {
			return out, fmt.Errorf("experiment %s: %w", s.Name, err)
		}
		sum := sha256.Sum256(b)
		e, changed, err := st.PutExperiment(ctx, store.Experiment{Name: s.Name, Spec: b, Digest: hex.EncodeToString(sum[:]), Alloc: s.allocation()})
		if err != nil {
			return out, err
		}
		out = append(out, Applied{Name: s.Name, Version: e.Version, Range: s.Range, Changed: changed})
	}
	return out, nil
}

// Loaded is a stored experiment, decoded.
type Loaded struct {
	Spec    Spec                   `json:"spec"`
	Version int                    `json:"version"`
	Status  store.ExperimentStatus `json:"status"`
	Reason  string                 `json:"reason,omitempty"`
}

// Load reads every stored experiment.
func Load(ctx context.Context, st store.ExperimentStore) ([]Loaded, error) {
	es, err := st.Experiments(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Loaded, 0, len(es))
	for _, e := range es {
		var s Spec
		if err := json.Unmarshal(e.Spec, &s); err != nil {
			return nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		out = append(out, Loaded{Spec: s, Version: e.Version, Status: e.Status, Reason: e.Reason})
	}
	return out, nil
}
