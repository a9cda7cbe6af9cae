package experiment

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"

	"github.com/baton-ml/baton/internal/store"
)

// Targeting is a compiled targeting condition over a unit's attributes.
type Targeting struct{ prg cel.Program }

func compileTargeting(expr string) (*Targeting, error) {
	env, err := cel.NewEnv(cel.Variable("attrs", cel.MapType(cel.StringType, cel.DynType)), cel.CrossTypeNumericComparisons(true))
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL %q does not compile: %v", expr, iss.Err())
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("CEL %q yields %s; targeting must yield a bool", expr, ast.OutputType())
	}
	// A condition whose cost does not grow with the attributes (the usual
	// `attrs.market in [...]`) runs without the per-evaluation cost
	// tracker, which cost ten times the evaluation itself; one that loops
	// over request data keeps the limit, so a request cannot make it
	// expensive.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est, err := env.EstimateCost(ast, unknownSizes{}); err != nil || est.Max > maxTargetingCost {
		opts = append(opts, cel.CostLimit(maxTargetingCost))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &Targeting{prg: prg}, nil
}

// Match says whether a unit with attrs is targeted; a missing attribute
// does not match.
func (t *Targeting) Match(attrs map[string]any) bool {
	if attrs == nil {
		attrs = map[string]any{}
	}
	v, _, err := t.prg.Eval(attrsActivation{attrs})
	if err != nil {
		return false
	}
	return v == types.True
}

// hash is FNV-1a 64 over a, a separator and b, without allocating: the
// hot path of every assignment.
func hash(a string, v int, b string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(a); i++ {
		h ^= uint64(a[i])
		h *= prime
	}
	for x := uint64(v) | 1<<63; x != 0; x >>= 8 {
		h ^= x & 0xff
		h *= prime
	}
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= prime
	}
	// Finalize (splitmix64) so that nearby units spread over buckets.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Assigner places units in one experiment's variants.
type Assigner struct {
	spec    Spec
	version int
	status  store.ExperimentStatus
	cum     []int // cumulative weights in buckets
	target  *Targeting
	control int
	// others are the ranges of the layer's other experiments, to say
	// whose a bucket outside this experiment's range is.
	others []layerRange
}

type layerRange struct {
	name string
	r    [2]int
}

// NewAssigner prepares assignment for a loaded experiment.
func NewAssigner(l Loaded) (*Assigner, error) {
	s := l.Spec.WithDefaults()
	a := &Assigner{spec: s, version: l.Version, status: l.Status}
	total := 0.0
	for i, v := range s.Variants {
		total += v.Weight
		a.cum = append(a.cum, int(total*Buckets+0.5))
		if v.Name == s.Control {
			a.control = i
		}
	}
	if len(a.cum) > 0 {
		a.cum[len(a.cum)-1] = Buckets
	}
	if s.Targeting != "" {
		t, err := compileTargeting(s.Targeting)
		if err != nil {
			return nil, fmt.Errorf("experiment %s targeting: %w", s.Name, err)
		}
		a.target = t
	}
	return a, nil
}

// NewAssigners prepares assignment for every loaded experiment, each
// knowing the ranges of the other experiments of its layer, so that a unit
// outside its range is told whose range it is in, if anyone's.
func NewAssigners(ls []Loaded) (map[string]*Assigner, error) {
	out := make(map[string]*Assigner, len(ls))
	var errs []error
	for _, l := range ls {
		a, err := NewAssigner(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range ls {
			if o.Spec.Name != l.Spec.Name && o.Spec.WithDefaults().Layer == a.spec.Layer {
				a.others = append(a.others, layerRange{o.Spec.Name, o.Spec.Range})
			}
		}
		out[l.Spec.Name] = a
	}
	return out, errors.Join(errs...)
}

// Reasons a unit is not in an experiment (Assignment.Why).
const (
	WhyHoldout = "holdout"
	// WhyOtherExperiment: the unit's bucket is another experiment's of
	// the layer (Assignment.Other names it).
	WhyOtherExperiment = "other_experiment"
	// WhyUnallocated: the unit's bucket is outside this experiment's
	// traffic and no other experiment of the layer has it.
	WhyUnallocated = "not_in_traffic"
	WhyNotTargeted = "not_targeted"
)

// Assignment is where a unit is.
type Assignment struct {
	Experiment string `json:"experiment"`
	Version    int    `json:"version"`
	// In says whether the unit is in the experiment (not held out, in
	// its buckets, targeted, and the experiment running). A unit that is
	// not gets the control experience and is not exposed.
	In           bool   `json:"in"`
	Variant      string `json:"variant"`
	ModelVersion int    `json:"model_version,omitempty"`
	// Why says why a unit is not in: holdout, other_experiment (Other
	// names it), not_in_traffic (the bucket is outside this experiment's
	// traffic share and no other experiment of the layer has it),
	// not_targeted, paused, stopped.
	Why   string `json:"why,omitempty"`
	Other string `json:"other,omitempty"`
	// Bucket is the unit's bucket in the layer, [0, 10000), against the
	// experiment's Range.
	Bucket int    `json:"bucket"`
	Range  [2]int `json:"range"`
}

// Assign places a unit. Without targeting it does not allocate: it is on
// the path of every request.
func (a *Assigner) Assign(unit string, attrs map[string]any) Assignment {
	out := Assignment{Experiment: a.spec.Name, Version: a.version}
	ctl := a.spec.Variants[a.control]
	out.Variant, out.ModelVersion = ctl.Name, ctl.ModelVersion
	if a.status != store.ExperimentRunning {
		out.Why = string(a.status)
		return out
	}
	b := int(hash(a.spec.Layer, 0, unit) % Buckets)
	out.Bucket, out.Range = b, a.spec.Range
	switch {
	case b < int(a.spec.Holdout*Buckets+0.5):
		out.Why = WhyHoldout
		return out
	case b < a.spec.Range[0] || b >= a.spec.Range[1]:
		out.Why = WhyUnallocated
		for _, o := range a.others {
			if b >= o.r[0] && b < o.r[1] {
				out.Why, out.Other = WhyOtherExperiment, o.name
			}
		}
		return out
	}
	if a.target != nil && !a.target.Match(attrs) {
		out.Why = WhyNotTargeted
		return out
	}
	// The variant hash includes the allocation version: a new allocation
	// re-randomizes every unit (documented), so versions never mix.
	v := int(hash(a.spec.Name, a.version, unit) % Buckets)
	for i, c := range a.cum {
		if v < c {
			out.In, out.Variant, out.ModelVersion = true, a.spec.Variants[i].Name, a.spec.Variants[i].ModelVersion
			return out
		}
	}
	return out
}

// Spec is the experiment's spec (with defaults).
func (a *Assigner) Spec() Spec { return a.spec }

// Status is the experiment's status when the assigner was made.
func (a *Assigner) Status() store.ExperimentStatus { return a.status }

// Version is the allocation version.
func (a *Assigner) Version() int { return a.version }

// maxTargetingCost bounds a targeting condition's CEL cost per evaluation.
const maxTargetingCost = 100_000

// unknownSizes estimates nothing: a condition over request data of any
// size then estimates unbounded, and only one over constants is bounded.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// attrsActivation hands CEL the one variable without a map per call.
type attrsActivation struct{ attrs map[string]any }

func (a attrsActivation) ResolveName(name string) (any, bool) {
	if name == "attrs" {
		return a.attrs, true
	}
	return nil, false
}

func (a attrsActivation) Parent() interpreter.Activation { return nil }
