package canary

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

// Direction says which way a metric may not move.
type Direction string

// The directions. The empty Direction is Either.
const (
	Increase Direction = "increase" // only a rise is a failure (errors, latency)
	Decrease Direction = "decrease" // only a fall is a failure (throughput)
	Either   Direction = "either"
)

// Defaults of Config.
const (
	DefaultConfidence      = 0.98
	DefaultTolerance       = 0.25
	DefaultAllowedIncrease = 1.0
	DefaultAllowedDecrease = 1.0
	DefaultPass            = 75.0
	DefaultMarginal        = 50.0
	// DefaultGroup holds the metrics that name no group.
	DefaultGroup = "default"
)

// Config tunes Judge. Its zero value is Kayenta's defaults: every metric
// judged in either direction, in one group, 98% confidence, pass at 75 and
// marginal at 50. Optional numbers are pointers so that 0 can be set
// explicitly; nil takes the default.
type Config struct {
	// Metrics configures metrics by name. A metric missing from both
	// samples but named here is judged NoData (or NodataFailMetric);
	// a metric in the samples but not here takes the defaults.
	Metrics map[string]MetricConfig `yaml:"metrics" json:"metrics,omitempty"`
	// Weights gives groups a share of the score, in percent. Groups without
	// a weight share what the weights leave of 100 equally.
	Weights    map[string]float64 `yaml:"weights" json:"weights,omitempty"`
	Thresholds Thresholds         `yaml:"thresholds" json:"thresholds"`
	// Confidence is the level of the shift's interval; 0 means 0.98.
	Confidence float64 `yaml:"confidence" json:"confidence,omitempty"`
	// Tolerance is the fraction of the estimated shift that the interval
	// must clear for High or Low (nil: 0.25).
	Tolerance *float64 `yaml:"tolerance" json:"tolerance,omitempty"`
}

// MetricConfig configures one metric.
type MetricConfig struct {
	Direction Direction `yaml:"direction" json:"direction,omitempty"`
	// Critical forces the score to 0 when the metric is not Pass.
	Critical bool `yaml:"critical" json:"critical,omitempty"`
	// Group is the group the metric scores in (empty: DefaultGroup).
	Group string `yaml:"group" json:"group,omitempty"`
	// Muted metrics are judged and reported but do not count in the score.
	Muted bool `yaml:"muted" json:"muted,omitempty"`
	// MustHaveData makes a metric without data NodataFailMetric, which
	// counts against its group, rather than NoData, which does not count.
	MustHaveData bool `yaml:"must_have_data" json:"must_have_data,omitempty"`
	// AllowedIncrease is the smallest mean(canary)/mean(baseline) ratio at
	// which a significant rise is High (nil: 1.0).
	AllowedIncrease *float64 `yaml:"allowed_increase" json:"allowed_increase,omitempty"`
	// AllowedDecrease is the largest ratio at which a significant fall is
	// Low (nil: 1.0).
	AllowedDecrease *float64 `yaml:"allowed_decrease" json:"allowed_decrease,omitempty"`
}

// Thresholds classify the score: pass at or above Pass, marginal at or
// above Marginal, fail below. nil takes the default.
type Thresholds struct {
	Pass     *float64 `yaml:"pass" json:"pass,omitempty"`
	Marginal *float64 `yaml:"marginal" json:"marginal,omitempty"`
}

// LoadConfig decodes a YAML configuration strictly (unknown keys are
// errors) and validates it. name names the input in errors.
func LoadConfig(r io.Reader, name string) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	var cfg Config
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.DisallowUnknownField()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				return Config{}, fmt.Errorf("%s: line %d: %s", name, tk.Position.Line, ye.GetMessage())
			}
		}
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// Validate reports the first problem with c, naming its field.
func (c Config) Validate() error {
	names := sortedKeys(c.Metrics)
	groups := map[string]bool{DefaultGroup: true}
	for _, name := range names {
		m := c.Metrics[name]
		field := "metrics." + name
		switch {
		case strings.TrimSpace(name) == "":
			return errors.New("metrics: a metric has an empty name")
		case m.Direction != "" && m.Direction != Increase && m.Direction != Decrease && m.Direction != Either:
			return fmt.Errorf("%s.direction: unknown direction %q (want increase, decrease or either)", field, m.Direction)
		case m.Critical && m.Muted:
			// A muted metric does not count, so it cannot veto either.
			return fmt.Errorf("%s: critical and muted contradict each other", field)
		}
		if err := checkRatio(field+".allowed_increase", m.AllowedIncrease); err != nil {
			return err
		}
		if err := checkRatio(field+".allowed_decrease", m.AllowedDecrease); err != nil {
			return err
		}
		groups[groupOf(m)] = true
	}
	sum := 0.0
	for _, g := range sortedKeys(c.Weights) {
		w := c.Weights[g]
		switch {
		case !(w >= 0) || math.IsInf(w, 0):
			return fmt.Errorf("weights.%s: weight %g: want a percentage ≥ 0", g, w)
		case !groups[g]:
			return fmt.Errorf("weights.%s: no metric is in group %q", g, g)
		}
		sum += w
	}
	if sum > 100+1e-9 {
		return fmt.Errorf("weights: they add up to %g, over 100", sum)
	}
	pass, marginal := c.thresholds()
	switch {
	case !(pass >= 0 && pass <= 100):
		return fmt.Errorf("thresholds.pass: %g: want a score in [0, 100]", pass)
	case !(marginal >= 0 && marginal <= 100):
		return fmt.Errorf("thresholds.marginal: %g: want a score in [0, 100]", marginal)
	case marginal > pass:
		return fmt.Errorf("thresholds: marginal %g is above pass %g", marginal, pass)
	}
	if c.Confidence != 0 && !(c.Confidence > 0 && c.Confidence < 1) {
		return fmt.Errorf("confidence: %g: want a level in (0, 1), such as 0.98", c.Confidence)
	}
	if t := c.Tolerance; t != nil && (!(*t >= 0) || math.IsInf(*t, 0)) {
		return fmt.Errorf("tolerance: %g: want a fraction ≥ 0, such as 0.25", *t)
	}
	return nil
}

func checkRatio(field string, v *float64) error {
	if v != nil && (!(*v >= 0) || math.IsInf(*v, 0)) {
		return fmt.Errorf("%s: %g: want a mean ratio ≥ 0, such as 1.1", field, *v)
	}
	return nil
}

func (c Config) thresholds() (pass, marginal float64) {
	return orDefault(c.Thresholds.Pass, DefaultPass), orDefault(c.Thresholds.Marginal, DefaultMarginal)
}

func (c Config) confidence() float64 {
	if c.Confidence == 0 {
		return DefaultConfidence
	}
	return c.Confidence
}

func groupOf(m MetricConfig) string {
	if m.Group == "" {
		return DefaultGroup
	}
	return m.Group
}

func (m MetricConfig) direction() Direction {
	if m.Direction == "" {
		return Either
	}
	return m.Direction
}

func orDefault(v *float64, def float64) float64 {
	if v == nil {
		return def
	}
	return *v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
