package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// Doc is a decoded set of experiments (a file or an API body) that passed
// the checks that need no store, with where each field was written.
type Doc struct {
	Specs  []Spec
	loc    *flow.Located
	root   string      // "experiments" in a file, "" for an API body (a list)
	failed flow.Errors // what did not decode
}

// ReadFile reads and checks an experiments file on its own; every problem
// is reported at once, each as file:line:column: field: message
// (flow.Errors, exit 2).
func ReadFile(path string) (*Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, flow.Errors{{File: path, Msg: "cannot read the experiments file: " + err.Error()}}
	}
	var f File
	loc, err := flow.Decode(path, data, &f)
	d := &Doc{Specs: f.Experiments, loc: loc, root: "experiments"}
	var failed flow.Errors
	if err != nil {
		errors.As(err, &failed)
	}
	if err == nil && len(f.Experiments) == 0 {
		return nil, flow.Errors{{File: path, Line: 1, Column: 1, Msg: "no experiments: the file lists them under experiments:"}}
	}
	d.failed = failed
	return d, d.check()
}

// ParseJSON reads an API body: a JSON array of experiments. Problems name
// the JSON field ("[0].variants[1].model_version") and where in the body
// it is (body:LINE:COLUMN).
func ParseJSON(body []byte) (*Doc, error) {
	var specs []Spec
	loc, err := flow.Decode("body", body, &specs)
	d := &Doc{Specs: specs, loc: loc}
	var failed flow.Errors
	if err != nil {
		errors.As(err, &failed)
	}
	if err == nil && len(specs) == 0 {
		return nil, flow.Errors{{Msg: "no experiments: the body is a JSON array of experiments"}}
	}
	d.failed = failed
	return d, d.check()
}

// ParseFile reads and checks an experiments file on its own (Apply then
// checks it against what is stored).
func ParseFile(path string) ([]Spec, error) {
	d, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return d.Specs, nil
}

func (d *Doc) at(i int) string {
	if d.root == "" {
		return "[" + strconv.Itoa(i) + "]"
	}
	return d.root + "[" + strconv.Itoa(i) + "]"
}

// problems adds each experiment's own rules to the decoding problems: a
// field that failed to decode is not judged again.
func (d *Doc) problems() flow.Errors {
	errs := slices.Clone(d.failed)
	fields := d.failed.Fields()
	seen := map[string]bool{}
	for i, s := range d.Specs {
		at := d.at(i)
		for _, pe := range s.Problems(at) {
			if !flow.Within(pe.Field, fields) {
				errs = append(errs, pe)
			}
		}
		if s.Name != "" && seen[s.Name] {
			errs = append(errs, &flow.Error{Field: at + ".name", Msg: fmt.Sprintf("experiment %q is declared twice", s.Name)})
		}
		seen[s.Name] = true
	}
	return errs
}

// check places the problems found without the store.
func (d *Doc) check() error { return d.loc.Place(d.problems()) }

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
	for i, s := range d.Specs {
		at := d.at(i)
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
