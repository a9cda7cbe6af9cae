package feature

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Catalog is the registered definitions, newest versions.
type Catalog struct {
	Entities map[string]*Entity
	Sources  map[string]*Source
	Features map[string]*Feature
	// SourceVersions and EntityVersions hold the registered versions.
	SourceVersions map[string]int
	EntityVersions map[string]int
}

// Defs returns the catalog as definitions, sorted by name.
func (c *Catalog) Defs() *Defs {
	d := &Defs{}
	for _, n := range slices.Sorted(maps.Keys(c.Entities)) {
		d.Entities = append(d.Entities, *c.Entities[n])
	}
	for _, n := range slices.Sorted(maps.Keys(c.Sources)) {
		d.Sources = append(d.Sources, *c.Sources[n])
	}
	for _, n := range c.FeatureNames() {
		d.Features = append(d.Features, *c.Features[n])
	}
	return d
}

// FeatureNames returns every feature's name, sorted.
func (c *Catalog) FeatureNames() []string { return slices.Sorted(maps.Keys(c.Features)) }

// KeyOf returns the entity key field of a source.
func (c *Catalog) KeyOf(src *Source) string {
	if e := c.Entities[src.Entity]; e != nil {
		return e.Key
	}
	return ""
}

// Retention is how long, behind its newest event, a source's events stay in
// the online store: its longest window plus the allowed lateness, so a late
// event still finds the events its windows share.
func (c *Catalog) Retention(source string) time.Duration {
	return c.maxWindow(source) + c.Lateness(source)
}

func (c *Catalog) maxWindow(source string) time.Duration {
	var r time.Duration
	for _, f := range c.Features {
		if f.Source == source && f.Window.D() > r {
			r = f.Window.D()
		}
	}
	return r
}

// Lateness is how far behind its newest event a source's event may be and
// still reach the online store.
func (c *Catalog) Lateness(source string) time.Duration {
	if s := c.Sources[source]; s != nil && s.Lateness > 0 {
		return s.Lateness.D()
	}
	return c.maxWindow(source)
}

// Load reads the registered definitions.
func Load(ctx context.Context, st store.FeatureStore) (*Catalog, error) {
	specs, err := st.FeatureSpecs(ctx)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Entities: map[string]*Entity{}, Sources: map[string]*Source{}, Features: map[string]*Feature{},
		SourceVersions: map[string]int{}, EntityVersions: map[string]int{}}
	for _, s := range specs {
		var err error
		switch s.Kind {
		case store.FeatureEntity:
			var e Entity
			err = json.Unmarshal(s.Spec, &e)
			c.Entities[e.Name], c.EntityVersions[e.Name] = &e, s.Version
		case store.FeatureSource:
			var src Source
			err = json.Unmarshal(s.Spec, &src)
			src.seal()
			c.Sources[src.Name], c.SourceVersions[src.Name] = &src, s.Version
		case store.FeatureDef:
			var f Feature
			err = json.Unmarshal(s.Spec, &f)
			f.Version = s.Version
			c.Features[f.Name] = &f
		}
		if err != nil {
			return nil, fmt.Errorf("registered %s %s version %d: %w", s.Kind, s.Name, s.Version, err)
		}
	}
	return c, nil
}

// Applied is one definition after Apply.
type Applied struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	New     bool   `json:"new"`
}

// Apply validates d against what is registered and registers every changed
// definition as a new version, all in one transaction.
func Apply(ctx context.Context, st store.FeatureStore, file string, d *Defs) ([]Applied, error) {
	cur, err := Load(ctx, st)
	if err != nil {
		return nil, err
	}
	if errs := d.Validate(cur.Defs()); len(errs) > 0 {
		for _, e := range errs {
			e.File = file
		}
		return nil, errs
	}
	var specs []store.FeatureSpec
	add := func(kind, name string, v any) {
		dg, b := digest(v)
		specs = append(specs, store.FeatureSpec{Kind: kind, Name: name, Digest: dg, Spec: b})
	}
	for _, e := range d.Entities {
		add(store.FeatureEntity, e.Name, e)
	}
	for _, s := range d.Sources {
		add(store.FeatureSource, s.Name, s)
	}
	for _, f := range d.Features {
		add(store.FeatureDef, f.Name, f)
	}
	before := map[string]int{}
	for _, s := range specs {
		if vs, err := st.FeatureSpecVersions(ctx, s.Kind, s.Name); err == nil {
			before[s.Kind+"/"+s.Name] = vs[len(vs)-1].Version
		}
	}
	got, _, err := st.PutFeatureSpecs(ctx, specs)
	if err != nil {
		return nil, fmt.Errorf("register feature definitions: %w", err)
	}
	out := make([]Applied, len(got))
	for i, s := range got {
		out[i] = Applied{Kind: s.Kind, Name: s.Name, Version: s.Version, New: s.Version > before[s.Kind+"/"+s.Name]}
	}
	return out, nil
}

// Select returns the named features (every feature when names is empty),
// or an error naming the unknown one.
func (c *Catalog) Select(names []string) ([]*Feature, error) {
	if len(names) == 0 {
		names = c.FeatureNames()
		if len(names) == 0 {
			return nil, flow.Errors{{Msg: "no features are registered; run baton feature apply FILE first"}}
		}
	}
	out := make([]*Feature, 0, len(names))
	for _, n := range names {
		f := c.Features[n]
		if f == nil {
			return nil, flow.Errors{{Field: "features", Msg: fmt.Sprintf("unknown feature %q; baton feature list shows the registered ones", n)}}
		}
		out = append(out, f)
	}
	return out, nil
}
