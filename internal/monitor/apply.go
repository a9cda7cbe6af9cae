package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// Stores is what applying monitors reads (to check what they name: the
// feature catalog, the registry, the endpoints, artifacts, the signal
// contracts) and writes.
type Stores interface {
	store.MonitorStore
	store.FeatureStore
	store.ModelStore
	store.ServeStore
	store.RunReader
	store.SignalStore
}

// Doc is a decoded set of monitors (a file or an API body) with where each
// field was written; Apply adds the checks against the store.
type Doc struct{ *flow.Applied[Spec] }

// ReadFile reads and checks a monitors file on its own; every problem is
// reported at once, each as file:line:column: field: message (flow.Errors,
// exit 2). The document comes back with its problems, for Apply to add
// those against the store.
func ReadFile(path string) (*Doc, error) {
	a, err := flow.ReadApplied(path, "monitor", "monitors", func(f *File) []Spec { return f.Monitors })
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// ParseJSON reads an API body: a JSON array of monitors. Problems name the
// JSON field and where in the body it is (body:LINE:COLUMN).
func ParseJSON(body []byte) (*Doc, error) {
	a, err := flow.ParseApplied[Spec](body, "monitor", "monitors")
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// Applied is one monitor after Apply.
type Applied struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Changed bool   `json:"changed"`
}

// Apply checks monitors built in Go (paths "monitors[i]") and stores them.
func Apply(ctx context.Context, st Stores, specs []Spec) ([]Applied, error) {
	return (&Doc{flow.NewApplied(specs, "monitor", "monitors")}).Apply(ctx, st)
}

// Apply checks every monitor on its own and against the store (features,
// sources and fields, models, endpoints, artifacts, the contract of the
// signal it publishes), then stores them: a problem anywhere stores none.
// A monitor whose spec did not change is left as it is.
func (d *Doc) Apply(ctx context.Context, st Stores) ([]Applied, error) {
	refs, err := d.references(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := d.Report(refs); err != nil {
		return nil, err
	}
	out := make([]Applied, 0, len(d.Items))
	for _, s := range d.Items {
		dg, b, err := s.Digest()
		if err != nil {
			return out, err
		}
		_, changed, err := st.PutMonitor(ctx, store.Monitor{Name: s.Name, Spec: b, Digest: dg})
		if err != nil {
			return out, err
		}
		out = append(out, Applied{Name: s.Name, Kind: s.Kind, Changed: changed})
	}
	return out, nil
}

// references finds what the monitors name and the store lacks.
func (d *Doc) references(ctx context.Context, st Stores) (flow.Errors, error) {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	cat, err := feature.Load(ctx, st)
	if err != nil {
		return nil, err
	}
	summaries, err := st.Models(ctx)
	if err != nil {
		return nil, err
	}
	var models []string
	for _, m := range summaries {
		models = append(models, m.Name)
	}
	eps, err := st.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	endpoints := map[string]serve.Endpoint{}
	for _, e := range eps {
		spec, err := serve.Stored(e)
		if err != nil {
			return nil, err
		}
		endpoints[e.Name] = spec
	}
	contracts, err := signal.Load(ctx, st)
	if err != nil {
		return nil, err
	}
	features := slices.Sorted(maps.Keys(cat.Features))
	sources := slices.Sorted(maps.Keys(cat.Sources))
	endpointNames := slices.Sorted(maps.Keys(endpoints))
	endpoint := func(field, name string, kind string) {
		e, ok := endpoints[name]
		switch {
		case !ok:
			add(field, "endpoint %q is not applied (endpoints: %s)%s; apply it first (baton endpoint apply)",
				name, flow.List(endpointNames), flow.DidYouMean(name, endpointNames))
		case kind != "" && e.Kind != kind:
			has := e.Kind
			if has == "" {
				has = serve.KindPredict
			}
			add(field, "endpoint %s is of kind %s: this monitor reads the pages of a %s endpoint", name, has, kind)
		}
	}
	ratio := func(field string, r Ratio) {
		srcs := map[string]*feature.Source{}
		for _, m := range []struct {
			name string
			m    Measure
		}{{".numerator", r.Numerator}, {".denominator", r.Denominator}} {
			src := cat.Sources[m.m.Source]
			if src == nil {
				add(field+m.name+".source", "source %q is not in the feature catalog (sources: %s)%s",
					m.m.Source, flow.List(sources), flow.DidYouMean(m.m.Source, sources))
				continue
			}
			srcs[m.name] = src
			if m.m.Field != "" {
				t, ok := src.Fields[m.m.Field]
				switch {
				case !ok:
					names := src.FieldOrder()
					add(field+m.name+".field", "source %s has no field %q (fields: %s)%s", src.Name, m.m.Field, flow.List(names), flow.DidYouMean(m.m.Field, names))
				case t == feature.String:
					add(field+m.name+".field", "field %s of source %s is a string: a sum needs numbers", m.m.Field, src.Name)
				}
			}
		}
		if r.By == "" {
			return
		}
		for _, name := range []string{".numerator", ".denominator"} {
			if src := srcs[name]; src != nil {
				if _, ok := src.Fields[r.By]; !ok {
					names := src.FieldOrder()
					add(field+".by", "source %s (the %s) has no field %q to group by (fields: %s)%s", src.Name, name[1:], r.By, flow.List(names), flow.DidYouMean(r.By, names))
				}
			}
		}
	}
	for i, s := range d.Items {
		at := d.At(i)
		switch s.Kind {
		case KindFeatureDrift:
			entity := ""
			for j, f := range s.Features {
				def := cat.Features[f]
				if def == nil {
					add(fmt.Sprintf("%s.features[%d]", at, j), "feature %q is not in the feature catalog (features: %s)%s",
						f, flow.List(features), flow.DidYouMean(f, features))
					continue
				}
				e := cat.Sources[def.Source].Entity
				if entity != "" && e != entity {
					add(fmt.Sprintf("%s.features[%d]", at, j), "feature %s is of entity %s, the ones before of %s: a monitor watches one entity's keys", f, e, entity)
				}
				entity = e
			}
			if r := s.Reference; r != nil {
				switch {
				case r.Model != "" && !slices.Contains(models, r.Model):
					add(at+".reference.model", "model %q is not in the registry (registered: %s)%s", r.Model, flow.List(models), flow.DidYouMean(r.Model, models))
				case r.Model != "" && r.Version != "":
					if _, err := strconv.Atoi(r.Version); err == nil {
						if _, err := st.ModelVersion(ctx, r.Model, mustAtoi(r.Version)); errors.Is(err, store.ErrNotFound) {
							add(at+".reference.version", "model %s has no version %s", r.Model, r.Version)
						} else if err != nil {
							return nil, err
						}
					}
				case r.Artifact != "":
					p, err := artifact.ParsePath(r.Artifact)
					if err != nil {
						add(at+".reference.artifact", "%s: %v; it names a run's artifact, RUN/STEP/NAME", r.Artifact, err)
						break
					}
					if _, err := artifact.Resolve(ctx, st, p); errors.Is(err, fault.NotFound) {
						add(at+".reference.artifact", "%s: %v (baton artifact ls RUN lists a run's artifacts)", r.Artifact, err)
					} else if err != nil {
						return nil, err
					}
				}
			}
		case KindPredictionDrift:
			endpoint(at+".endpoint", s.Endpoint, "")
		case KindOnlineQuality:
			if s.Numerator != nil && s.Denominator != nil {
				ratio(at, s.quality())
			}
		case KindResponsibleAI:
			endpoint(at+".endpoint", s.Endpoint, serve.KindRecommend)
			if s.MarketQuality != nil {
				ratio(at+".market_quality", *s.MarketQuality)
			}
		case KindScenario:
			sc := s.Scenario
			if sc == nil {
				break
			}
			if sc.Quality != nil {
				ratio(at+".scenario.quality", *sc.Quality)
			}
			if sc.Engagement != nil {
				ratio(at+".scenario.engagement", *sc.Engagement)
			}
			for _, m := range []struct {
				field string
				m     *SignalMatch
			}{{".scenario.change", sc.Change}, {".scenario.response", sc.Response}} {
				if m.m == nil {
					continue
				}
				c, ok := contracts[m.m.Signal]
				if !ok {
					names := slices.Sorted(maps.Keys(contracts))
					add(at+m.field+".signal", "signal %q has no contract (signals: %s)%s; apply its contract first (baton signal apply)",
						m.m.Signal, flow.List(names), flow.DidYouMean(m.m.Signal, names))
					continue
				}
				if p := m.m.Param; p != "" {
					if !slices.ContainsFunc(c.Params, func(x flow.SignalParam) bool { return x.Name == p }) {
						add(at+m.field+".param", "signal %s declares no param %q", m.m.Signal, p)
					}
				}
			}
		}
		if s.Publish != "" {
			// The contract is checked with params of the shape a breach
			// publishes: what it would refuse then is refused now.
			if _, err := contracts.Check(s.Publish, sampleParams(s)); err != nil {
				add(at+".publish", "%v (docs/monitors.md has the contract a monitor's signal needs)", err)
			}
		}
	}
	return errs, nil
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Load reads every stored monitor with its defaults, by name.
func Load(ctx context.Context, st store.MonitorStore) ([]Spec, error) {
	ms, err := st.Monitors(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Spec, 0, len(ms))
	for _, m := range ms {
		s, err := stored(m)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Find reads one stored monitor; fault.NotFound names the ones there are.
func Find(ctx context.Context, st store.MonitorStore, name string) (Spec, error) {
	specs, err := Load(ctx, st)
	if err != nil {
		return Spec{}, err
	}
	var names []string
	for _, s := range specs {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Spec{}, fault.Errorf(fault.NotFound, "monitor %q is not applied (monitors: %s)%s", name, flow.List(names), flow.DidYouMean(name, names))
}

// stored decodes a stored spec; one that does not decode is the store's
// damage, named, never an empty monitor.
func stored(m store.Monitor) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(m.Spec, &s); err != nil {
		return s, fmt.Errorf("monitor %s: its stored spec does not decode: %w", m.Name, err)
	}
	return s.WithDefaults(), nil
}
