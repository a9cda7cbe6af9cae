package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

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
}

// Doc is a decoded set of endpoints (a file or an API body) that passed
// the checks that need no store, with where each field was written.
type Doc struct {
	Endpoints []Endpoint
	loc       *flow.Located
	root      string      // "endpoints" in a file, "" for an API body (a list)
	failed    flow.Errors // what did not decode
}

// ReadFile reads and checks an endpoints file on its own; every problem is
// reported at once, each as file:line:column: field: message (flow.Errors,
// exit 2).
func ReadFile(path string) (*Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, flow.Errors{{File: path, Msg: "cannot read the endpoints file: " + err.Error()}}
	}
	var f File
	loc, err := flow.Decode(path, data, &f)
	d := &Doc{Endpoints: f.Endpoints, loc: loc, root: "endpoints"}
	var failed flow.Errors
	if err != nil {
		errors.As(err, &failed)
	}
	if err == nil && len(f.Endpoints) == 0 {
		return nil, flow.Errors{{File: path, Line: 1, Column: 1, Msg: "no endpoints: the file lists them under endpoints:"}}
	}
	d.failed = failed
	return d, d.check()
}

// ParseJSON reads an API body: a JSON array of endpoints. Problems name
// the JSON field ("[0].fallback.model") and where in the body it is
// (body:LINE:COLUMN).
func ParseJSON(body []byte) (*Doc, error) {
	var eps []Endpoint
	loc, err := flow.Decode("body", body, &eps)
	d := &Doc{Endpoints: eps, loc: loc}
	var failed flow.Errors
	if err != nil {
		errors.As(err, &failed)
	}
	if err == nil && len(eps) == 0 {
		return nil, flow.Errors{{Msg: "no endpoints: the body is a JSON array of endpoints"}}
	}
	d.failed = failed
	return d, d.check()
}

// ParseFile reads and checks an endpoints file on its own.
func ParseFile(path string) ([]Endpoint, error) {
	d, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return d.Endpoints, nil
}

func (d *Doc) at(i int) string {
	if d.root == "" {
		return "[" + strconv.Itoa(i) + "]"
	}
	return d.root + "[" + strconv.Itoa(i) + "]"
}

// problems adds the rules of each endpoint to the decoding problems: a
// field that failed to decode is not judged again.
func (d *Doc) problems() flow.Errors {
	errs := slices.Clone(d.failed)
	fields := d.failed.Fields()
	seen := map[string]bool{}
	for i, e := range d.Endpoints {
		at := d.at(i)
		for _, pe := range e.Problems(at) {
			if !flow.Within(pe.Field, fields) {
				errs = append(errs, pe)
			}
		}
		if e.Name != "" && seen[e.Name] {
			errs = append(errs, &flow.Error{Field: at + ".name", Msg: fmt.Sprintf("endpoint %q is declared twice", e.Name)})
		}
		seen[e.Name] = true
	}
	return errs
}

// check places the problems found without the store.
func (d *Doc) check() error { return d.loc.Place(d.problems()) }

// Apply checks every reference against the store (the models and versions
// in the registry, the features in the catalog), then stores the
// endpoints: a problem anywhere stores none.
func (d *Doc) Apply(ctx context.Context, st Stores) ([]Applied, error) {
	// Every problem at once: the document's own and its references (a
	// field that did not decode is not looked up).
	errs := d.problems()
	refs, err := d.references(ctx, st)
	if err != nil {
		return nil, err
	}
	fields := d.failed.Fields()
	for _, e := range refs {
		if !flow.Within(e.Field, fields) {
			errs = append(errs, e)
		}
	}
	if err := d.loc.Place(errs); err != nil {
		return nil, err
	}
	out := make([]Applied, 0, len(d.Endpoints))
	for _, e := range d.Endpoints {
		dg, b := e.Digest()
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
	return (&Doc{Endpoints: eps, root: "endpoints"}).Apply(ctx, st)
}

// modelStates are the states a fallback may name: which version holds one
// changes over time, so no version need hold it when the endpoint is
// applied.
var modelStates = []string{store.ModelProduction, store.ModelCanary, store.ModelShadow}

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
	if slices.ContainsFunc(d.Endpoints, func(e Endpoint) bool { return len(e.Features) > 0 }) {
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
	for i, e := range d.Endpoints {
		at := d.at(i)
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
		case fb.Version != "" && !slices.Contains(modelStates, fb.Version):
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
