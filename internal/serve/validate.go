package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Stores is what applying endpoints reads (the registry and the feature
// catalog, to check references) and writes.
type Stores interface {
	store.ServeStore
	store.ModelStore
	store.FeatureStore
	store.RunReader // a search endpoint's catalog artifact
}

// Doc is a decoded set of endpoints (a file or an API body) with where
// each field was written; Apply adds the checks against the store.
type Doc struct{ *flow.Applied[Endpoint] }

// ReadFile reads and checks an endpoints file on its own; every problem
// is reported at once, each as file:line:column: field: message
// (flow.Errors, exit 2). The document comes back with its problems, for
// Apply to add those against the store.
func ReadFile(path string) (*Doc, error) {
	a, err := flow.ReadApplied(path, "endpoint", "endpoints", func(f *File) []Endpoint { return f.Endpoints })
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// ParseJSON reads an API body: a JSON array of endpoints. Problems name the
// JSON field and where in the body it is (body:LINE:COLUMN).
func ParseJSON(body []byte) (*Doc, error) {
	a, err := flow.ParseApplied[Endpoint](body, "endpoint", "endpoints")
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// ParseFile reads and checks an endpoints file on its own.
func ParseFile(path string) ([]Endpoint, error) {
	d, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return d.Items, nil
}

// Apply checks every reference against the store (the models and versions
// in the registry, the features in the catalog), then stores the
// endpoints: a problem anywhere stores none.
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
	out := make([]Applied, 0, len(d.Items))
	for _, e := range d.Items {
		dg, b, err := e.Digest()
		if err != nil {
			return out, err
		}
		_, changed, err := st.PutEndpoint(ctx, store.Endpoint{Name: e.Name, Spec: b, Digest: dg})
		if err != nil {
			return out, err
		}
		out = append(out, Applied{Name: e.Name, Changed: changed})
	}
	return out, nil
}

// Apply checks endpoints built in Go (paths "endpoints[i]") and stores
// them.
func Apply(ctx context.Context, st Stores, eps []Endpoint) ([]Applied, error) {
	return (&Doc{flow.NewApplied(eps, "endpoint", "endpoints")}).Apply(ctx, st)
}

// modelStates are the states a fallback may name: which version holds one
// changes over time, so no version need hold it when the endpoint is
// applied.
var modelStates = []store.ModelState{store.ModelProduction, store.ModelCanary, store.ModelShadow}

// references finds what the endpoints name and the store lacks.
func (d *Doc) references(ctx context.Context, st Stores) (flow.Errors, error) {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	summaries, err := st.Models(ctx)
	if err != nil {
		return nil, err
	}
	models := make([]string, 0, len(summaries))
	for _, m := range summaries {
		models = append(models, m.Name)
	}
	var catalog []string
	if slices.ContainsFunc(d.Items, func(e Endpoint) bool { return len(e.Features) > 0 }) {
		cat, err := feature.Load(ctx, st)
		if err != nil {
			return nil, err
		}
		catalog = slices.Sorted(maps.Keys(cat.Features))
	}
	unknownModel := func(field, name string) {
		hint := flow.DidYouMean(name, models)
		if hint == "" {
			hint = "; register a version first (baton model register)"
		}
		add(field, "model %q is not in the registry (registered: %s)%s", name, flow.List(models), hint)
	}
	for i, e := range d.Items {
		at := d.At(i)
		if e.Recommend != nil && e.Recommend.Personalize != nil {
			if m := e.Recommend.Personalize.Model; m != "" && !slices.Contains(models, m) {
				unknownModel(at+".recommend.personalize.model", m)
			}
		}
		if e.Search != nil {
			if p, err := artifact.ParsePath(e.Search.Catalog); err == nil {
				if _, err := artifact.Resolve(ctx, st, p); errors.Is(err, fault.NotFound) {
					add(at+".search.catalog", "%s: %v; it names a run's artifact, RUN/STEP/NAME (baton artifact list RUN)", e.Search.Catalog, err)
				} else if err != nil {
					return nil, err
				}
			}
		}
		if e.Model != "" && !slices.Contains(models, e.Model) {
			unknownModel(at+".model", e.Model)
		}
		for j, f := range e.Features {
			if !slices.Contains(catalog, f) {
				add(fmt.Sprintf("%s.features[%d]", at, j), "feature %q is not in the feature catalog (features: %s)%s",
					f, flow.List(catalog), flow.DidYouMean(f, catalog))
			}
		}
		fb := e.Fallback
		switch {
		case fb.Model == "":
			if fb.Version != "" {
				add(at+".fallback.version", "names a version of no model: set fallback.model too")
			}
		case !slices.Contains(models, fb.Model):
			unknownModel(at+".fallback.model", fb.Model)
		case fb.Version != "" && !slices.Contains(modelStates, store.ModelState(fb.Version)):
			if msg, err := versionProblem(ctx, st, fb.Model, fb.Version); err != nil {
				return nil, err
			} else if msg != "" {
				add(at+".fallback.version", "%s", msg)
			}
		}
	}
	return errs, nil
}

// versionProblem says what is wrong with a version reference (a number or
// an alias) of a registered model, or "".
func versionProblem(ctx context.Context, st store.ModelStore, model, ref string) (string, error) {
	vs, err := st.ModelVersions(ctx, model)
	if err != nil {
		return "", err
	}
	var nums, aliases []string
	for _, v := range vs {
		nums = append(nums, strconv.Itoa(v.Version))
		aliases = append(aliases, v.Aliases...)
		if strconv.Itoa(v.Version) == ref || slices.Contains(v.Aliases, ref) {
			return "", nil
		}
	}
	return fmt.Sprintf("model %s has no version %q (versions: %s; aliases: %s; or a state: %s)",
		model, ref, flow.List(nums), flow.List(aliases), flow.List(modelStates)), nil
}
