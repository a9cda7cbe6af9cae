// Package monitor is baton's monitors that act: feature drift against a
// model's training set, drift of the confidence an endpoint serves, online
// quality (a ratio of sums over a source's events, per group against the
// global one) and responsible-AI checks of the pages a recommend endpoint
// served (catalog coverage, intra-list diversity, new creators' exposure,
// quality per market). Monitors are declared in a file (Spec), applied like
// endpoints, evaluated on a schedule by the leading server (Runner) on its
// clock; a breach publishes the monitor's signal with its evidence. It has
// no HTTP: it reads through narrow interfaces (the feature engine, the
// registry, serving's samples and page statistics, the blob store).
package monitor

import (
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
)

// The kinds of monitor.
const (
	KindFeatureDrift    = "feature_drift"
	KindPredictionDrift = "prediction_drift"
	KindOnlineQuality   = "online_quality"
	KindResponsibleAI   = "responsible_ai"
	KindScenario        = "scenario"
)

// Kinds lists the kinds, for messages.
var Kinds = []string{KindFeatureDrift, KindPredictionDrift, KindOnlineQuality, KindResponsibleAI, KindScenario}

// Duration is written "1h", "1d" or "7d".
type Duration = dur.Duration

// Spec is one monitor. Which fields apply depends on Kind; a field of
// another kind is refused, so that nothing written is silently unused.
type Spec struct {
	Name        string `json:"name" yaml:"name"`
	Kind        string `json:"kind" yaml:"kind"`
	Description string `json:"description,omitempty" yaml:"description"`
	// Every is how often the monitor is evaluated, in slots of the
	// server's clock (default 1d: once a UTC day).
	Every Duration `json:"every,omitzero" yaml:"every"`
	// Publish names the signal a breach publishes (its contract must
	// declare the params docs/monitors.md lists); without it a breach is
	// stored and counted only.
	Publish string `json:"publish,omitempty" yaml:"publish"`

	// feature_drift: Features as of the evaluation for the keys with an
	// event in the last SourceWindow, against the Reference training set.
	Features     []string   `json:"features,omitempty" yaml:"features"`
	Reference    *Reference `json:"reference,omitempty" yaml:"reference"`
	SourceWindow Duration   `json:"source_window,omitzero" yaml:"source_window"`
	// KSAlpha (feature_drift) breaches when a feature's two-sample KS
	// p-value (chi-square for a string feature) is below it.
	KSAlpha *float64 `json:"ks_alpha,omitempty" yaml:"ks_alpha"`

	// PSIMax (feature_drift, prediction_drift) breaches when a PSI exceeds
	// it; MinSamples is the fewest current values judged.
	PSIMax     *float64 `json:"psi_max,omitempty" yaml:"psi_max"`
	MinSamples int      `json:"min_samples,omitempty" yaml:"min_samples"`

	// Endpoint (prediction_drift, responsible_ai) is the serving endpoint
	// watched; Window (prediction_drift, online_quality, responsible_ai)
	// the span each evaluation looks at (default Every).
	Endpoint string   `json:"endpoint,omitempty" yaml:"endpoint"`
	Window   Duration `json:"window,omitzero" yaml:"window"`

	// online_quality: a ratio of two measures over the window's events,
	// globally and per value of By.
	Numerator   *Measure `json:"numerator,omitempty" yaml:"numerator"`
	Denominator *Measure `json:"denominator,omitempty" yaml:"denominator"`
	By          string   `json:"by,omitempty" yaml:"by"`
	Min         *float64 `json:"min,omitempty" yaml:"min"`
	Max         *float64 `json:"max,omitempty" yaml:"max"`
	MinRelative *float64 `json:"min_relative,omitempty" yaml:"min_relative"`
	MaxRelative *float64 `json:"max_relative,omitempty" yaml:"max_relative"`
	MinEvents   int      `json:"min_events,omitempty" yaml:"min_events"`

	// responsible_ai: checks of the pages Endpoint served in the window,
	// and quality per market against the global average.
	CatalogCoverage    *Bound `json:"catalog_coverage,omitempty" yaml:"catalog_coverage"`
	Diversity          *Bound `json:"diversity,omitempty" yaml:"diversity"`
	NewCreatorExposure *Bound `json:"new_creator_exposure,omitempty" yaml:"new_creator_exposure"`
	MarketQuality      *Ratio `json:"market_quality,omitempty" yaml:"market_quality"`
	// MinPages is the fewest pages the page checks are judged on.
	MinPages int `json:"min_pages,omitempty" yaml:"min_pages"`

	// scenario: a quality scenario measured from what happened
	// (scenario.go).
	Scenario *Scenario `json:"scenario,omitempty" yaml:"scenario"`
}

// Reference is the data a feature's current values are compared with: the
// training set of a model's version (its lineage's training_set), or an
// artifact named directly. Either way a CSV whose columns include the
// features.
type Reference struct {
	Model string `json:"model,omitempty" yaml:"model"`
	// Version is a number, a state or an alias (default production): the
	// version serving now, whose training set it is.
	Version  string `json:"version,omitempty" yaml:"version"`
	Artifact string `json:"artifact,omitempty" yaml:"artifact"`
}

// Measure is a sum over a source's events: of Field, or a count of the
// events without one.
type Measure struct {
	Source string `json:"source" yaml:"source"`
	Field  string `json:"field,omitempty" yaml:"field"`
}

// Bound is a check's threshold: a value below Min or above Max breaches.
type Bound struct {
	Min *float64 `json:"min,omitempty" yaml:"min"`
	Max *float64 `json:"max,omitempty" yaml:"max"`
}

// Ratio is a quality ratio: Numerator / Denominator over a window's
// events, globally (breached below Min or above Max) and per value of the
// events' field By (breached below MinRelative or above MaxRelative times
// the global ratio); groups with fewer than MinEvents denominator events
// are reported, not judged.
type Ratio struct {
	Numerator   Measure  `json:"numerator" yaml:"numerator"`
	Denominator Measure  `json:"denominator" yaml:"denominator"`
	By          string   `json:"by,omitempty" yaml:"by"`
	Min         *float64 `json:"min,omitempty" yaml:"min"`
	Max         *float64 `json:"max,omitempty" yaml:"max"`
	MinRelative *float64 `json:"min_relative,omitempty" yaml:"min_relative"`
	MaxRelative *float64 `json:"max_relative,omitempty" yaml:"max_relative"`
	MinEvents   int      `json:"min_events,omitempty" yaml:"min_events"`
}

// Defaults.
const (
	DefaultEvery        = 24 * time.Hour
	DefaultSourceWindow = 24 * time.Hour
	DefaultPSIMax       = 0.2
	DefaultMinSamples   = 50
	DefaultMinEvents    = 30
	DefaultMinPages     = 20
)

// PageSlot and PageSpan bound a responsible-AI window: the page statistics
// the server keeps are hourly slots of the last week (serve.PageStats).
const (
	PageSlot = time.Hour
	PageSpan = 7 * 24 * time.Hour
)

// WithDefaults fills what a spec leaves out.
func (s Spec) WithDefaults() Spec {
	if s.Every <= 0 {
		s.Every = Duration(DefaultEvery)
	}
	switch s.Kind {
	case KindFeatureDrift:
		if s.SourceWindow <= 0 {
			s.SourceWindow = Duration(DefaultSourceWindow)
		}
		if s.PSIMax == nil && s.KSAlpha == nil {
			s.PSIMax = ptr(DefaultPSIMax)
		}
		if s.MinSamples == 0 {
			s.MinSamples = DefaultMinSamples
		}
		if s.Reference != nil && s.Reference.Model != "" && s.Reference.Version == "" {
			r := *s.Reference
			r.Version = "production"
			s.Reference = &r
		}
	case KindPredictionDrift:
		if s.PSIMax == nil {
			s.PSIMax = ptr(DefaultPSIMax)
		}
		if s.MinSamples == 0 {
			s.MinSamples = DefaultMinSamples
		}
	case KindOnlineQuality:
		if s.MinEvents == 0 {
			s.MinEvents = DefaultMinEvents
		}
	case KindResponsibleAI:
		if s.MinPages == 0 {
			s.MinPages = DefaultMinPages
		}
		if s.MarketQuality != nil && s.MarketQuality.MinEvents == 0 {
			q := *s.MarketQuality
			q.MinEvents = DefaultMinEvents
			s.MarketQuality = &q
		}
	}
	if s.Kind == KindScenario {
		s.Scenario = s.Scenario.withDefaults()
	}
	if s.Window <= 0 && s.Kind != KindFeatureDrift && s.Kind != KindScenario {
		s.Window = s.Every
	}
	return s
}

// quality is an online_quality monitor's ratio.
func (s Spec) quality() Ratio {
	r := Ratio{By: s.By, Min: s.Min, Max: s.Max, MinRelative: s.MinRelative, MaxRelative: s.MaxRelative, MinEvents: s.MinEvents}
	if s.Numerator != nil {
		r.Numerator = *s.Numerator
	}
	if s.Denominator != nil {
		r.Denominator = *s.Denominator
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// File is a monitors file.
type File struct {
	Monitors []Spec `yaml:"monitors"`
}

// EntryName names the monitor in a list of them (flow.Entry).
func (s Spec) EntryName() string { return s.Name }

// fieldsOf are the fields only some kinds have, by kind.
var fieldsOf = map[string][]string{
	KindFeatureDrift:    {"features", "reference", "source_window", "ks_alpha", "psi_max", "min_samples"},
	KindPredictionDrift: {"endpoint", "window", "psi_max", "min_samples"},
	KindOnlineQuality:   {"window", "numerator", "denominator", "by", "min", "max", "min_relative", "max_relative", "min_events"},
	KindResponsibleAI:   {"endpoint", "window", "catalog_coverage", "diversity", "new_creator_exposure", "market_quality", "min_pages"},
	KindScenario:        {"scenario"},
}

// set lists the kind-specific fields s sets.
func (s Spec) set() []string {
	var out []string
	add := func(name string, on bool) {
		if on {
			out = append(out, name)
		}
	}
	add("features", len(s.Features) > 0)
	add("reference", s.Reference != nil)
	add("source_window", s.SourceWindow != 0)
	add("ks_alpha", s.KSAlpha != nil)
	add("psi_max", s.PSIMax != nil)
	add("min_samples", s.MinSamples != 0)
	add("endpoint", s.Endpoint != "")
	add("window", s.Window != 0)
	add("numerator", s.Numerator != nil)
	add("denominator", s.Denominator != nil)
	add("by", s.By != "")
	add("min", s.Min != nil)
	add("max", s.Max != nil)
	add("min_relative", s.MinRelative != nil)
	add("max_relative", s.MaxRelative != nil)
	add("min_events", s.MinEvents != 0)
	add("catalog_coverage", s.CatalogCoverage != nil)
	add("diversity", s.Diversity != nil)
	add("new_creator_exposure", s.NewCreatorExposure != nil)
	add("market_quality", s.MarketQuality != nil)
	add("min_pages", s.MinPages != 0)
	add("scenario", s.Scenario != nil)
	return out
}

// Problems checks one monitor on its own; each problem names its field
// under at.
func (s Spec) Problems(at string) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: at + field, Msg: fmt.Sprintf(format, args...)})
	}
	if !flow.ValidName(s.Name) {
		add(".name", "%q: use lowercase letters, digits, _ and -", s.Name)
	}
	own, ok := fieldsOf[s.Kind]
	if !ok {
		add(".kind", "%q: one of %s", s.Kind, strings.Join(Kinds, ", "))
	} else {
		for _, f := range s.set() {
			if !slices.Contains(own, f) {
				var kinds []string
				for _, k := range Kinds {
					if slices.Contains(fieldsOf[k], f) {
						kinds = append(kinds, k)
					}
				}
				add("."+f, "is a field of %s monitors, not of %s", strings.Join(kinds, " and "), s.Kind)
			}
		}
	}
	if s.Every < 0 || s.Every > 0 && s.Every.D() < time.Second {
		add(".every", "%s: at least 1s", s.Every)
	}
	if s.Window < 0 {
		add(".window", "%s: must be positive", s.Window)
	}
	if s.Publish != "" && !flow.ValidName(s.Publish) {
		add(".publish", "%q is not a signal name", s.Publish)
	}
	positive := func(field string, v *float64) {
		if v != nil && !(*v > 0) {
			add(field, "%g: must be positive", *v)
		}
	}
	share := func(field string, v *float64) {
		if v != nil && (*v < 0 || *v > 1) {
			add(field, "%g: a share in [0, 1]", *v)
		}
	}
	if s.MinSamples < 0 {
		add(".min_samples", "%d: must be positive", s.MinSamples)
	}
	switch s.Kind {
	case KindFeatureDrift:
		if len(s.Features) == 0 {
			add(".features", "list the features to watch")
		}
		seen := map[string]bool{}
		for i, f := range s.Features {
			if !flow.ValidName(f) {
				add(fmt.Sprintf(".features[%d]", i), "%q is not a feature name", f)
			}
			if seen[f] {
				add(fmt.Sprintf(".features[%d]", i), "feature %q is listed twice", f)
			}
			seen[f] = true
		}
		switch r := s.Reference; {
		case r == nil:
			add(".reference", "say what the features are compared with: {model: NAME} (its production version's training set) or {artifact: RUN/STEP/NAME}")
		case (r.Model == "") == (r.Artifact == ""):
			add(".reference", "give either model (and optionally version) or artifact")
		case r.Artifact != "" && r.Version != "":
			add(".reference.version", "a version is of a model: give model with it")
		case r.Model != "" && !flow.ValidName(r.Model):
			add(".reference.model", "%q is not a model name", r.Model)
		}
		if s.SourceWindow < 0 {
			add(".source_window", "%s: must be positive", s.SourceWindow)
		}
		positive(".psi_max", s.PSIMax)
		if s.KSAlpha != nil && !(*s.KSAlpha > 0 && *s.KSAlpha < 1) {
			add(".ks_alpha", "%g: a p-value threshold in (0, 1)", *s.KSAlpha)
		}
	case KindPredictionDrift:
		if s.Endpoint == "" {
			add(".endpoint", "name the endpoint whose served confidence is watched")
		} else if !flow.ValidName(s.Endpoint) {
			add(".endpoint", "%q is not an endpoint name", s.Endpoint)
		}
		positive(".psi_max", s.PSIMax)
	case KindOnlineQuality:
		if s.Numerator == nil {
			add(".numerator", "say what is summed: {source: NAME, field: FIELD} (a count of the events without field)")
		}
		if s.Denominator == nil {
			add(".denominator", "say what the numerator is divided by: {source: NAME} (a count), or {source, field} (a sum)")
		}
		errs = append(errs, s.quality().problems(at, "", s.Numerator != nil, s.Denominator != nil)...)
	case KindResponsibleAI:
		if s.Endpoint == "" {
			add(".endpoint", "name the recommend endpoint whose served pages are checked")
		} else if !flow.ValidName(s.Endpoint) {
			add(".endpoint", "%q is not an endpoint name", s.Endpoint)
		}
		if s.CatalogCoverage == nil && s.Diversity == nil && s.NewCreatorExposure == nil && s.MarketQuality == nil {
			add("", "a responsible_ai monitor checks at least one of catalog_coverage, diversity, new_creator_exposure and market_quality")
		}
		for _, b := range []struct {
			name string
			b    *Bound
		}{{"catalog_coverage", s.CatalogCoverage}, {"diversity", s.Diversity}, {"new_creator_exposure", s.NewCreatorExposure}} {
			if b.b == nil {
				continue
			}
			if b.b.Min == nil && b.b.Max == nil {
				add("."+b.name, "give min, max or both")
			}
			share("."+b.name+".min", b.b.Min)
			share("."+b.name+".max", b.b.Max)
			if b.b.Min != nil && b.b.Max != nil && *b.b.Min > *b.b.Max {
				add("."+b.name, "min %g is above max %g", *b.b.Min, *b.b.Max)
			}
		}
		if s.MarketQuality != nil {
			errs = append(errs, s.MarketQuality.problems(at, ".market_quality", true, true)...)
		}
		if w := s.WithDefaults().Window.D(); w > 0 && (w < PageSlot || w > PageSpan) {
			from := ""
			if s.Window == 0 {
				from = " (every's, as no window is given)"
			}
			add(".window", "%s%s: the served pages are kept in hourly slots for a week: a window from 1h to 7d", Duration(w), from)
		}
		if s.MinPages < 0 {
			add(".min_pages", "%d: must be positive", s.MinPages)
		}
	case KindScenario:
		errs = append(errs, s.Scenario.problems(at)...)
	}
	return errs
}

// problems checks a ratio; under is its path below the monitor ("" for an
// online_quality monitor's own fields).
func (r Ratio) problems(at, under string, num, den bool) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: at + under + field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, m := range []struct {
		name string
		m    Measure
		on   bool
	}{{".numerator", r.Numerator, num}, {".denominator", r.Denominator, den}} {
		if !m.on {
			continue
		}
		if !flow.ValidName(m.m.Source) {
			add(m.name+".source", "%q is not a source name", m.m.Source)
		}
	}
	if r.Min == nil && r.Max == nil && r.MinRelative == nil && r.MaxRelative == nil {
		add("", "give a threshold: min or max (of the global ratio), min_relative or max_relative (of each group's, against the global)")
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{{".min", r.Min}, {".max", r.Max}, {".min_relative", r.MinRelative}, {".max_relative", r.MaxRelative}} {
		if t.v != nil && (*t.v < 0 || math.IsInf(*t.v, 0)) {
			add(t.name, "%g: must be 0 or more", *t.v)
		}
	}
	if (r.MinRelative != nil || r.MaxRelative != nil) && r.By == "" {
		add(".by", "a relative threshold compares groups: name the events' field that makes them (by: market)")
	}
	if r.MinEvents < 0 {
		add(".min_events", "%d: must be 0 or more", r.MinEvents)
	}
	return errs
}

// Digest is the spec's canonical JSON and its SHA-256.
func (s Spec) Digest() (string, []byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", nil, fmt.Errorf("monitor %s: %w", s.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b, nil
}
