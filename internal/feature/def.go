// Package feature computes features from one definition two ways: a
// streaming path that keeps an online store fresh as events arrive, and a
// batch path that builds point-in-time-correct training sets from the same
// event log. Both paths share the definitions, the window semantics and the
// aggregate functions, and Consistency measures that they agree.
package feature

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/flow"
)

// FieldType is the type of a source field.
type FieldType string

// Field types.
const (
	String FieldType = "string"
	Float  FieldType = "float"
	Int    FieldType = "int"
	Bool   FieldType = "bool"
)

// Aggregate names.
const (
	Count         = "count"
	Sum           = "sum"
	Avg           = "avg"
	Min           = "min"
	Max           = "max"
	Last          = "last"
	DistinctCount = "distinct_count"
)

var aggregates = []string{Count, Sum, Avg, Min, Max, Last, DistinctCount}

// Quality checks and their actions.
const (
	CheckNotNullRate     = "not_null_rate"
	CheckRange           = "range"
	CheckDrift           = "drift"
	CheckRowCompleteness = "row_completeness"
	ActionBlock          = "block"
	ActionWarn           = "warn"
)

// Entity is what features describe, such as a member.
type Entity struct {
	Name        string `json:"name" yaml:"name"`
	Key         string `json:"key" yaml:"key"`
	Description string `json:"description,omitempty" yaml:"description"`
}

// Source is a stream of events about an entity.
type Source struct {
	Name      string `json:"name" yaml:"name"`
	Entity    string `json:"entity" yaml:"entity"`
	Timestamp string `json:"timestamp" yaml:"timestamp"`
	// Fields maps each event field to its type.
	Fields map[string]FieldType `json:"fields" yaml:"fields"`
	// Lateness is how far behind the newest event an event may be and still
	// reach the online store; zero means the source's longest window.
	Lateness    Duration `json:"lateness,omitzero" yaml:"lateness"`
	Description string   `json:"description,omitempty" yaml:"description"`
	// RespondsTo names the endpoints whose served answers these events
	// respond to (plays of the titles a page showed). It declares the
	// link no event carries, so the debt register can find a model that
	// trains on reactions to its own output (a hidden feedback loop). The
	// endpoints need not exist yet: endpoints are applied after the
	// models they serve, which train on these features.
	RespondsTo []string `json:"responds_to,omitempty" yaml:"responds_to"`

	order []string // field names, sorted: the event encoding's order
}

// Check is a quality gate on a batch computation of a feature.
type Check struct {
	Check  string   `json:"check" yaml:"check"`
	Min    *float64 `json:"min,omitempty" yaml:"min"`
	Max    *float64 `json:"max,omitempty" yaml:"max"`
	Action string   `json:"action" yaml:"action"`
}

// Feature is a window aggregate over a source's events.
type Feature struct {
	Name         string   `json:"name" yaml:"name"`
	Source       string   `json:"source" yaml:"source"`
	Aggregate    string   `json:"aggregate" yaml:"aggregate"`
	Field        string   `json:"field,omitempty" yaml:"field"`
	Window       Duration `json:"window" yaml:"window"`
	FreshnessSLA Duration `json:"freshness_sla,omitzero" yaml:"freshness_sla"`
	Quality      []Check  `json:"quality,omitempty" yaml:"quality"`
	Description  string   `json:"description,omitempty" yaml:"description"`
	// StaleSignal publishes a feature_stale signal when the feature is
	// staler than its freshness SLA.
	StaleSignal bool `json:"stale_signal,omitempty" yaml:"stale_signal"`

	// Version is the registered version; zero before Apply.
	Version int `json:"-" yaml:"-"`
}

// Defs is a set of definitions, as one file holds them.
type Defs struct {
	Entities []Entity  `json:"entities,omitempty" yaml:"entities"`
	Sources  []Source  `json:"sources,omitempty" yaml:"sources"`
	Features []Feature `json:"features,omitempty" yaml:"features"`
}

// Duration is a time.Duration written as "90s", "1h" or "7d", the one
// duration type of every baton file and API body.
type Duration = dur.Duration

// ParseDuration reads Go durations plus days ("7d", "1d12h").
func ParseDuration(s string) (time.Duration, error) { return dur.Parse(s) }

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

const maxWindow = 366 * 24 * time.Hour

// ParseFile reads and validates a definitions file.
func ParseFile(path string) (*Defs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, flow.Errors{{File: path, Msg: "cannot read the feature file: " + unwrapPath(err)}}
	}
	return Parse(path, data)
}

func unwrapPath(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes a definitions file strictly (unknown keys are errors) and
// validates it on its own. On failure it returns flow.Errors, each problem
// with the file, line and field.
func Parse(file string, data []byte) (*Defs, error) { return ParseWith(file, data, nil) }

// ParseWith is Parse for a file whose definitions may refer to known ones
// (registered entities and sources).
func ParseWith(file string, data []byte, known *Defs) (*Defs, error) {
	// The position-carrying tree reports every problem at once, each with
	// its line and field (unknown keys, values of the wrong kind, bad
	// durations), as flow files do.
	var d Defs
	loc, err := flow.Decode(file, data, &d)
	var failed flow.Errors
	if err != nil && !errors.As(err, &failed) {
		return nil, err
	}
	if err == nil && len(d.Entities)+len(d.Sources)+len(d.Features) == 0 {
		return nil, flow.Errors{{File: file, Line: 1, Column: 1, Msg: "no entities, sources or features: a feature file declares at least one"}}
	}
	errs := slices.Clone(failed)
	fields := failed.Fields()
	for _, e := range d.Validate(known) {
		if !flow.Within(e.Field, fields) {
			errs = append(errs, e)
		}
	}
	if err := loc.Place(errs); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks the definitions; known holds definitions already
// registered that these may refer to (nil for none). Each problem names the
// field.
func (d *Defs) Validate(known *Defs) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	entities := map[string]bool{}
	sources := map[string]*Source{}
	if known != nil {
		for _, e := range known.Entities {
			entities[e.Name] = true
		}
		for i := range known.Sources {
			sources[known.Sources[i].Name] = &known.Sources[i]
		}
	}
	seen := map[string]bool{}
	for i, e := range d.Entities {
		p := fmt.Sprintf("entities[%d]", i)
		checkName(add, p+".name", "entity", e.Name, seen)
		if e.Key == "" {
			add(p+".key", "an entity needs key: the event field that holds its key")
		}
		entities[e.Name] = true
	}
	seen = map[string]bool{}
	for i := range d.Sources {
		s := &d.Sources[i]
		p := fmt.Sprintf("sources[%d]", i)
		checkName(add, p+".name", "source", s.Name, seen)
		switch {
		case s.Entity == "":
			add(p+".entity", "a source needs entity: the entity its events are about")
		case !entities[s.Entity]:
			add(p+".entity", "unknown entity %q; declare it under entities", s.Entity)
		}
		if s.Timestamp == "" {
			add(p+".timestamp", "a source needs timestamp: the event field that holds the event time")
		}
		for _, name := range slices.Sorted(maps.Keys(s.Fields)) {
			if !nameRE.MatchString(name) {
				add(p+".fields."+name, "field name %q: use lower case letters, digits and _", name)
			}
			switch s.Fields[name] {
			case String, Float, Int, Bool:
			default:
				add(p+".fields."+name, "type %q: use string, float, int or bool", s.Fields[name])
			}
		}
		if s.Lateness < 0 {
			add(p+".lateness", "must not be negative")
		}
		seenEP := map[string]bool{}
		for j, ep := range s.RespondsTo {
			q := fmt.Sprintf("%s.responds_to[%d]", p, j)
			switch {
			case !flow.ValidName(ep):
				add(q, "endpoint name %q: use lowercase letters, digits, _ and -, starting with a letter or digit", ep)
			case seenEP[ep]:
				add(q, "endpoint %q is listed twice", ep)
			}
			seenEP[ep] = true
		}
		sources[s.Name] = s
	}
	seen = map[string]bool{}
	for i := range d.Features {
		f := &d.Features[i]
		p := fmt.Sprintf("features[%d]", i)
		checkName(add, p+".name", "feature", f.Name, seen)
		src := sources[f.Source]
		switch {
		case f.Source == "":
			add(p+".source", "a feature needs source: the source whose events it aggregates")
		case src == nil:
			add(p+".source", "unknown source %q; declare it under sources", f.Source)
		}
		if !slices.Contains(aggregates, f.Aggregate) {
			add(p+".aggregate", "%q: use one of %s", f.Aggregate, strings.Join(aggregates, ", "))
		}
		switch {
		case f.Aggregate == Count && f.Field != "":
			if src != nil && src.Fields[f.Field] == "" {
				add(p+".field", "source %s has no field %q", f.Source, f.Field)
			}
		case f.Aggregate == Count || !slices.Contains(aggregates, f.Aggregate):
		case f.Field == "":
			add(p+".field", "aggregate %s needs field: the source field it aggregates", f.Aggregate)
		case src != nil && src.Fields[f.Field] == "":
			add(p+".field", "source %s has no field %q", f.Source, f.Field)
		case src != nil && src.Fields[f.Field] == String && slices.Contains([]string{Sum, Avg, Min, Max}, f.Aggregate):
			add(p+".field", "%s of %s: the field is a string; %s needs float or int", f.Aggregate, f.Field, f.Aggregate)
		}
		switch {
		case f.Window <= 0:
			add(p+".window", "a feature needs a positive window such as 1h")
		case f.Window.D() > maxWindow:
			add(p+".window", "%s is longer than the longest window, 366d", f.Window)
		}
		if f.FreshnessSLA < 0 {
			add(p+".freshness_sla", "must not be negative")
		}
		for j, c := range f.Quality {
			q := fmt.Sprintf("%s.quality[%d]", p, j)
			switch c.Check {
			case CheckNotNullRate, CheckRowCompleteness:
				if c.Min == nil || *c.Min < 0 || *c.Min > 1 {
					add(q+".min", "%s needs min between 0 and 1", c.Check)
				}
			case CheckRange:
				if c.Min == nil && c.Max == nil {
					add(q, "range needs min, max or both")
				} else if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
					add(q+".max", "max %g is below min %g", *c.Max, *c.Min)
				}
			case CheckDrift:
				if c.Max == nil || *c.Max <= 0 {
					add(q+".max", "drift needs max: the highest PSI allowed, such as 0.2")
				}
			default:
				add(q+".check", "%q: use not_null_rate, range, drift or row_completeness", c.Check)
			}
			if c.Action != ActionBlock && c.Action != ActionWarn {
				add(q+".action", "%q: use block or warn", c.Action)
			}
		}
	}
	return errs
}

func checkName(add func(string, string, ...any), field, what, name string, seen map[string]bool) {
	switch {
	case name == "":
		add(field, "a %s needs a name", what)
	case !nameRE.MatchString(name) || len(name) > 100:
		add(field, "%s name %q: use lower case letters, digits and _, starting with a letter", what, name)
	case seen[name]:
		add(field, "%s %q is declared twice", what, name)
	}
	seen[name] = true
}

// digest is the SHA-256 of v's canonical JSON: a changed definition gets a
// new digest and so a new version.
func digest(v any) (string, []byte) {
	b, _ := json.Marshal(v)
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), buf.Bytes()
}

// FieldOrder returns the source's field names in encoding order. Load
// computes it once for registered sources; a Source built by hand sorts on
// each call rather than caching, so concurrent callers never race.
func (s *Source) FieldOrder() []string {
	if s.order != nil {
		return s.order
	}
	return slices.Sorted(maps.Keys(s.Fields))
}

// seal fixes the field order before the source is shared.
func (s *Source) seal() { s.order = slices.Sorted(maps.Keys(s.Fields)) }
