package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Stores is what applying experiments reads (the endpoints they name and
// the registry, to check references) and writes.
type Stores interface {
	store.ExperimentStore
	store.ServeStore
	store.ModelStore
}

// Doc is a decoded set of experiments (a file or an API body) with where
// each field was written; Apply adds the checks against the store.
type Doc struct{ *flow.Applied[Spec] }

// ReadFile reads and checks an experiments file on its own; every problem
// is reported at once, each as file:line:column: field: message
// (flow.Errors, exit 2). The document comes back with its problems, for
// Apply to add those against the store.
func ReadFile(path string) (*Doc, error) {
	a, err := flow.ReadApplied(path, "experiment", "experiments", func(f *File) []Spec { return f.Experiments })
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// ParseJSON reads an API body: a JSON array of experiments. Problems name the
// JSON field and where in the body it is (body:LINE:COLUMN).
func ParseJSON(body []byte) (*Doc, error) {
	a, err := flow.ParseApplied[Spec](body, "experiment", "experiments")
	if a == nil {
		return nil, err
	}
	return &Doc{a}, err
}

// ParseFile reads and checks an experiments file on its own.
func ParseFile(path string) ([]Spec, error) {
	d, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return d.Items, nil
}

// references finds what the experiments name and the store lacks: the
// endpoint, and the versions of its model the variants serve.
func (d *Doc) references(ctx context.Context, st Stores) (flow.Errors, error) {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	stored, err := st.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	models := map[string]string{} // endpoint -> model
	names := make([]string, 0, len(stored))
	for _, e := range stored {
		var spec struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(e.Spec, &spec); err != nil {
			return nil, fmt.Errorf("stored endpoint %s: %w", e.Name, err)
		}
		models[e.Name] = spec.Model
		names = append(names, e.Name)
	}
	versions := map[string][]int{}
	for i, s := range d.Items {
		at := d.At(i)
		if s.Endpoint == "" {
			// Without an endpoint the model is named at promotion
			// (exp promote --model), so its versions cannot be checked here.
			continue
		}
		model, ok := models[s.Endpoint]
		if !ok {
			add(at+".endpoint", "endpoint %q is not applied (endpoints: %s)%s; apply it first (baton endpoint apply)",
				s.Endpoint, flow.List(names), flow.DidYouMean(s.Endpoint, names))
			continue
		}
		have, ok := versions[model]
		if !ok {
			vs, err := st.ModelVersions(ctx, model)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			for _, v := range vs {
				have = append(have, v.Version)
			}
			versions[model] = have
		}
		for j, v := range s.Variants {
			if v.ModelVersion > 0 && !slices.Contains(have, v.ModelVersion) {
				nums := make([]string, len(have))
				for k, n := range have {
					nums[k] = strconv.Itoa(n)
				}
				add(fmt.Sprintf("%s.variants[%d].model_version", at, j), "model %s (of endpoint %s) has no version %d (versions: %s)",
					model, s.Endpoint, v.ModelVersion, flow.List(nums))
			}
		}
	}
	return errs, nil
}
