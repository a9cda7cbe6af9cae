// Package serve answers predictions in baton server: per endpoint, the
// model's production version (or, during a rollout, its canary for a share
// of units) behind a timeout and a confidence gate, with a deterministic
// fallback; shadow versions get copies of live traffic; every response
// says which path served it and why. The rollout controller judges the
// canary against the baseline each interval and advances, holds or rolls
// back.
package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/canary"
	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Endpoint is one serving endpoint.
type Endpoint struct {
	Name string `json:"name" yaml:"name"`
	// Kind is predict (the default: the model's answer as it is) or
	// recommend (a page of named rows from a recommendation model).
	Kind string `json:"kind,omitempty" yaml:"kind"`
	// Recommend configures a recommend endpoint's page.
	Recommend *RecommendConfig `json:"recommend,omitempty" yaml:"recommend"`
	// Search configures a search endpoint's retrieval.
	Search *SearchConfig `json:"search,omitempty" yaml:"search"`
	// Model is the registry model whose versions serve.
	Model string `json:"model" yaml:"model"`
	// Features are read from the online store by the request's key.
	Features []string `json:"features,omitempty" yaml:"features"`
	// Timeout bounds the model's answer (default 100ms).
	Timeout Duration `json:"timeout,omitzero" yaml:"timeout"`
	// MinConfidence is the confidence gate: below it the model's answer
	// is not served.
	MinConfidence float64  `json:"min_confidence,omitempty" yaml:"min_confidence"`
	Fallback      Fallback `json:"fallback" yaml:"fallback"`
	// Shadow sends copies of traffic to versions in state shadow (default
	// true).
	Shadow  *bool          `json:"shadow,omitempty" yaml:"shadow"`
	Rollout *RolloutConfig `json:"rollout,omitempty" yaml:"rollout"`
}

// Fallback is the deterministic answer when the model cannot serve:
// another model (such as a popularity ranking) or a static value; Static
// also backs up a fallback model that fails.
type Fallback struct {
	Model   string `json:"model,omitempty" yaml:"model"`
	Version string `json:"version,omitempty" yaml:"version"` // number, state or alias; default production
	Static  any    `json:"static,omitempty" yaml:"static"`
}

// RolloutConfig is how a canary is rolled out.
type RolloutConfig struct {
	// Stages are the canary's traffic shares in percent (default 1, 5,
	// 25, 50, 100).
	Stages []float64 `json:"stages,omitempty" yaml:"stages"`
	// Interval is how long each evaluation gathers metrics (default 1m).
	Interval Duration `json:"interval,omitzero" yaml:"interval"`
	// MinRequests per side in an interval; with fewer the stage holds.
	MinRequests int `json:"min_requests,omitempty" yaml:"min_requests"`
	// MaxHolds rolls back after this many marginal results in a row
	// (default 3).
	MaxHolds int `json:"max_holds,omitempty" yaml:"max_holds"`
	// Judge configures the canary judge; the metrics gathered are
	// latency_ms, error, fallback and confidence.
	Judge *canary.Config `json:"judge,omitempty" yaml:"judge"`
	// Promote false makes the rollout a canary check: the canary is
	// judged through the stages (the last may be below 100) and, when
	// every stage passes, stays canary, with canary_passed published; an
	// experiment's promotion (or a person) then moves it to production.
	// Default true: the last stage is 100 and passing it promotes.
	Promote *bool `json:"promote,omitempty" yaml:"promote"`
}

// Promotes says whether passing the last stage moves the canary to
// production (the default) or leaves it canary, checked.
func (r RolloutConfig) Promotes() bool { return r.Promote == nil || *r.Promote }

// Duration is written "50ms", "5m" or "7d" in files and API bodies, and
// returned in the same form.
type Duration = dur.Duration

// Defaults.
var DefaultStages = []float64{1, 5, 25, 50, 100}

const (
	defaultTimeout  = 100 * time.Millisecond
	defaultInterval = time.Minute
	defaultMinReqs  = 20
	defaultMaxHolds = 3
)

// withDefaults fills what the spec leaves out.
func (e Endpoint) withDefaults() Endpoint {
	if e.Timeout <= 0 {
		e.Timeout = Duration(defaultTimeout)
	}
	if e.Shadow == nil {
		t := true
		e.Shadow = &t
	}
	r := RolloutConfig{}
	if e.Rollout != nil {
		r = *e.Rollout
	}
	if len(r.Stages) == 0 {
		r.Stages = DefaultStages
	}
	if r.Interval <= 0 {
		r.Interval = Duration(defaultInterval)
	}
	if r.MinRequests <= 0 {
		r.MinRequests = defaultMinReqs
	}
	if r.MaxHolds <= 0 {
		r.MaxHolds = defaultMaxHolds
	}
	if r.Judge == nil {
		r.Judge = DefaultJudge()
	}
	e.Rollout = &r
	return e
}

// DefaultJudge judges the metrics serving gathers: more errors or
// fallbacks is critical, slower or less confident is not.
func DefaultJudge() *canary.Config {
	return &canary.Config{Metrics: map[string]canary.MetricConfig{
		"error":      {Direction: "increase", Critical: true},
		"fallback":   {Direction: "increase", Critical: true},
		"latency_ms": {Direction: "increase"},
		"confidence": {Direction: "decrease"},
	}}
}

// File is an endpoints file.
type File struct {
	Endpoints []Endpoint `yaml:"endpoints"`
}

// EntryName names the endpoint in a list of them (flow.Entry).
func (e Endpoint) EntryName() string { return e.Name }

// Problems checks an endpoint; each problem names its field under at.
func (e Endpoint) Problems(at string) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: at + field, Msg: fmt.Sprintf(format, args...)})
	}
	if !flow.ValidName(e.Name) {
		add(".name", "%q: use lowercase letters, digits, _ and -", e.Name)
	}
	switch e.Kind {
	case "", KindPredict:
		if e.Recommend != nil {
			add(".recommend", "only an endpoint of kind recommend has rows")
		}
		if e.Search != nil {
			add(".search", "only an endpoint of kind search has search")
		}
	case KindSearch:
		if e.Search == nil {
			add(".search", "a search endpoint needs search.catalog: the catalog CSV artifact, RUN/STEP/NAME")
		} else {
			e.Search.problems(".search", add)
		}
		if e.Recommend != nil {
			add(".recommend", "only an endpoint of kind recommend has rows")
		}
	case KindRecommend:
		if e.Search != nil {
			add(".search", "only an endpoint of kind search has search")
		}
		if e.Recommend == nil {
			add(".recommend", "a recommend endpoint needs recommend.rows (types: %s)", strings.Join(RowTypes, ", "))
		} else {
			e.Recommend.problems(".recommend", add)
			if f := e.Recommend.AnchorFeature; f != "" && !slices.Contains(e.Features, f) {
				add(".recommend.anchor_feature", "%q is not in features: list it there so that it is read from the online store", f)
			}
		}
	default:
		add(".kind", "%q: use predict, recommend or search", e.Kind)
	}
	if !flow.ValidName(e.Model) {
		add(".model", "%q: the registry model that serves", e.Model)
	}
	if e.Timeout < 0 || e.Timeout.D() > time.Minute {
		add(".timeout", "%s: between 1ms and 1m", e.Timeout)
	}
	if e.MinConfidence < 0 || e.MinConfidence > 1 {
		add(".min_confidence", "%g: between 0 and 1", e.MinConfidence)
	}
	if e.Fallback.Model == "" && e.Fallback.Static == nil && e.Kind != KindSearch {
		add(".fallback", "an endpoint needs a deterministic fallback: static (a value) or model (such as a popularity ranking)")
	}
	if e.Fallback.Model != "" && !flow.ValidName(e.Fallback.Model) {
		add(".fallback.model", "%q is not a model name", e.Fallback.Model)
	}
	if r := e.Rollout; r != nil {
		for j, s := range r.Stages {
			if s <= 0 || s > 100 || j > 0 && s <= r.Stages[j-1] {
				add(fmt.Sprintf(".rollout.stages[%d]", j), "%g: stages are increasing percentages in (0, 100]", s)
			}
		}
		if len(r.Stages) > 0 && r.Stages[len(r.Stages)-1] != 100 && r.Promotes() {
			add(".rollout.stages", "the last stage is 100 (or set promote: false for a canary check that stops below 100)")
		}
		if r.Interval < 0 {
			add(".rollout.interval", "must be positive")
		}
		if r.Judge != nil {
			if err := r.Judge.Validate(); err != nil {
				add(".rollout.judge", "%v", err)
			}
		}
	}
	return errs
}

// Digest identifies an endpoint's spec.
func (e Endpoint) Digest() (string, []byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("endpoint %s: %w", e.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b, nil
}

// Applied is one endpoint after Apply.
type Applied struct {
	Name    string `json:"name"`
	Changed bool   `json:"changed"`
}

// Stored decodes an endpoint as stored, with its defaults (the
// architecture views read it as applied: Raw). A spec that does not decode
// is the store's damage, named, never an empty endpoint.
func Stored(e store.Endpoint) (Endpoint, error) {
	spec, err := Raw(e)
	return spec.withDefaults(), err
}

// Raw decodes an endpoint as stored, as it was applied.
func Raw(e store.Endpoint) (Endpoint, error) {
	var spec Endpoint
	if err := json.Unmarshal(e.Spec, &spec); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s: its stored spec does not decode: %w", e.Name, err)
	}
	return spec, nil
}
