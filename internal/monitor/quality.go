package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/stat"
	"github.com/baton-ml/baton/internal/store"
)

// QualityEvidence is what a quality ratio's evaluation found over the
// window's events, (From, To].
type QualityEvidence struct {
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"`
	Numerator   MeasureValue `json:"numerator"`
	Denominator MeasureValue `json:"denominator"`
	Ratio       *float64     `json:"ratio"`
	By          string       `json:"by,omitempty"`
	Groups      []GroupRatio `json:"groups,omitempty"`
}

// MeasureValue is a measure's sum over the window and how many events
// made it.
type MeasureValue struct {
	Source string  `json:"source"`
	Field  string  `json:"field,omitempty"`
	Sum    float64 `json:"sum"`
	Events int     `json:"events"`
}

// GroupRatio is one group's ratio, and it against the global one.
type GroupRatio struct {
	// Value is the group's value of the By field ("" for events without
	// one).
	Value       string   `json:"value"`
	Numerator   float64  `json:"numerator"`
	Denominator float64  `json:"denominator"`
	Events      int      `json:"events"`
	Ratio       *float64 `json:"ratio"`
	Relative    *float64 `json:"relative"`
	Judged      bool     `json:"judged"`
}

type groupSums struct {
	num, den float64
	events   int
}

// quality computes ratio r over the events of (from, to]: Σ numerator /
// Σ denominator, globally and per value of r.By (each group's relative to
// the global ratio). Its checks are named prefix (default "ratio") for the
// global ratio and prefix/BY=VALUE (default relative/...) for a group's
// relative ratio.
func quality(ctx context.Context, feats Features, r Ratio, prefix string, from, to time.Time) (*QualityEvidence, []Check, error) {
	ev := &QualityEvidence{From: from.UTC(), To: to.UTC(), By: r.By,
		Numerator: MeasureValue{Source: r.Numerator.Source, Field: r.Numerator.Field}, Denominator: MeasureValue{Source: r.Denominator.Source, Field: r.Denominator.Field}}
	cat := feats.Catalog()
	groups := map[string]*groupSums{}
	group := func(v feature.Value) *groupSums {
		key := groupKey(v)
		g := groups[key]
		if g == nil {
			g = &groupSums{}
			groups[key] = g
		}
		return g
	}
	// index finds a field's place in its source's events (-1: none).
	index := func(source, field string) (int, error) {
		src := cat.Sources[source]
		if src == nil {
			return 0, fmt.Errorf("source %s is not in the feature catalog", source)
		}
		if field == "" {
			return -1, nil
		}
		i := slices.Index(src.FieldOrder(), field)
		if i < 0 {
			return 0, fmt.Errorf("source %s has no field %s", source, field)
		}
		return i, nil
	}
	type side struct {
		m     Measure
		out   *MeasureValue
		num   bool
		field int
		by    int
	}
	sides := []*side{{m: r.Numerator, out: &ev.Numerator, num: true}, {m: r.Denominator, out: &ev.Denominator}}
	for _, sd := range sides {
		var err error
		if sd.field, err = index(sd.m.Source, sd.m.Field); err != nil {
			return ev, nil, err
		}
		sd.by = -1
		if r.By != "" {
			if sd.by, err = index(sd.m.Source, r.By); err != nil {
				return ev, nil, err
			}
		}
	}
	// One pass over each source's window, both sides at once when they
	// read one source.
	for i, sd := range sides {
		if i == 1 && sd.m.Source == sides[0].m.Source {
			continue
		}
		err := feats.Events(ctx, sd.m.Source, from, to, func(e *feature.Event) error {
			for _, x := range sides {
				if x.m.Source != sd.m.Source {
					continue
				}
				v := 1.0
				if x.field >= 0 {
					fv := e.Vals[x.field]
					if fv.Kind != feature.KindNum {
						v = 0 // a missing value adds nothing
					} else {
						v = fv.Num
					}
				}
				x.out.Sum += v
				x.out.Events++
				var g *groupSums
				if x.by >= 0 {
					g = group(e.Vals[x.by])
				}
				if g == nil {
					continue
				}
				if x.num {
					g.num += v
				} else {
					g.den += v
					g.events++
				}
			}
			return nil
		})
		if err != nil {
			return ev, nil, err
		}
	}
	global := ev.Numerator.Sum / ev.Denominator.Sum
	ev.Ratio = finite(global)
	name := prefix
	if name == "" {
		name = "ratio"
	}
	var checks []Check
	enough := ev.Denominator.Events >= r.MinEvents
	note := ""
	if !enough {
		note = fmt.Sprintf("%d events, fewer than min_events %d", ev.Denominator.Events, r.MinEvents)
	}
	if r.Min != nil || r.Max != nil {
		checks = append(checks, judge(name, global, r.Min, r.Max, enough, note))
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	relName := prefix
	if relName == "" {
		relName = "relative"
	}
	for _, k := range keys {
		g := groups[k]
		gr := GroupRatio{Value: k, Numerator: g.num, Denominator: g.den, Events: g.events, Ratio: finite(g.num / g.den)}
		rel := g.num / g.den / global
		gr.Relative = finite(rel)
		gr.Judged = g.events >= r.MinEvents && gr.Relative != nil
		ev.Groups = append(ev.Groups, gr)
		if r.MinRelative == nil && r.MaxRelative == nil {
			continue
		}
		note := ""
		if g.events < r.MinEvents {
			note = fmt.Sprintf("%d events, fewer than min_events %d", g.events, r.MinEvents)
		}
		checks = append(checks, judge(relName+"/"+r.By+"="+k, rel, r.MinRelative, r.MaxRelative, g.events >= r.MinEvents, note))
	}
	return ev, checks, nil
}

// PredictionDriftEvidence is what a prediction_drift evaluation found: the
// confidence the endpoint's production version served in the window,
// against the reference window of that version.
type PredictionDriftEvidence struct {
	Endpoint    string    `json:"endpoint"`
	Model       string    `json:"model"`
	Version     int       `json:"version,omitempty"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	N           int       `json:"n"`
	CurrentMean *float64  `json:"current_mean,omitempty"`
	// Counts are the window's answers in the reference's bins.
	Counts    []float64            `json:"counts,omitempty"`
	PSI       *float64             `json:"psi"`
	Reference *ConfidenceReference `json:"reference,omitempty"`
	Note      string               `json:"note,omitempty"`
}

// ConfidenceReference is the first window of a production version's
// served confidence: its deciles cut the bins, Counts are its answers in
// them. It is kept in each result's evidence, so the comparison survives
// a restart (serving's samples are in memory).
type ConfidenceReference struct {
	Version int       `json:"version"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	N       int       `json:"n"`
	Mean    float64   `json:"mean"`
	Cuts    []float64 `json:"cuts"`
	Counts  []float64 `json:"counts"`
}

// binCounts counts x in the ten bins the nine cuts make (a value equal to
// a cut falls in the bin above it, as stat.PSI bins).
func binCounts(cuts []float64, x []float64) []float64 {
	counts := make([]float64, len(cuts)+1)
	for _, v := range x {
		if math.IsNaN(v) {
			continue
		}
		counts[sort.Search(len(cuts), func(i int) bool { return cuts[i] > v })]++
	}
	return counts
}

func (r *Runner) predictionDrift(ctx context.Context, s Spec, now time.Time) (evaluation, error) {
	from := now.Add(-s.Window.D())
	ev := &PredictionDriftEvidence{Endpoint: s.Endpoint, From: from.UTC(), To: now.UTC()}
	out := evaluation{evidence: ev}
	model, err := r.endpointModel(ctx, s.Endpoint)
	if err != nil {
		return out, err
	}
	ev.Model, out.model = model, model
	if r.d.Samples == nil {
		return out, errors.New("this process serves nothing: no served answers to read")
	}
	v, err := resolveVersion(ctx, r.d.Store, model, string(store.ModelProduction))
	if errors.Is(err, store.ErrNotFound) {
		ev.Note = fmt.Sprintf("model %s has no production version", model)
		out.checks = []Check{judge("psi", math.NaN(), nil, s.PSIMax, false, ev.Note)}
		return out, nil
	}
	if err != nil {
		return out, err
	}
	ev.Version = v.Version
	cur := slices.Clone(r.d.Samples.Metrics(s.Endpoint, v.Version, from, now)["confidence"])
	ev.N = len(cur)
	ev.CurrentMean = finite(mean(cur))
	ref, err := r.confidenceReference(ctx, s.Name, v.Version)
	if err != nil {
		return out, err
	}
	psi := math.NaN()
	switch {
	case ref == nil && len(cur) >= s.MinSamples:
		slices.Sort(cur)
		dec := stat.Deciles(cur)
		d := dec[:]
		ref = &ConfidenceReference{Version: v.Version, From: from.UTC(), To: now.UTC(), N: len(cur), Mean: mean(cur), Cuts: d, Counts: binCounts(d, cur)}
		ev.Note = fmt.Sprintf("the reference of version %d is this window (its first with min_samples answers); later windows are compared with it", v.Version)
	case ref == nil:
		ev.Note = fmt.Sprintf("%d answers of version %d: fewer than min_samples %d to make its reference", len(cur), v.Version, s.MinSamples)
	default:
		ev.Counts = binCounts(ref.Cuts, cur)
		psi = stat.PSICounts(ref.Counts, ev.Counts)
		if len(cur) < s.MinSamples {
			ev.Note = fmt.Sprintf("%d answers: fewer than min_samples %d", len(cur), s.MinSamples)
		}
	}
	ev.Reference, ev.PSI = ref, finite(psi)
	out.checks = []Check{judge("psi", psi, nil, s.PSIMax, ev.Note == "", ev.Note)}
	return out, nil
}

// confidenceReference finds, in the monitor's recent results, the
// reference of version: nil when none holds one (a new version makes a
// new reference).
func (r *Runner) confidenceReference(ctx context.Context, monitor string, version int) (*ConfidenceReference, error) {
	rs, err := r.d.Store.MonitorResults(ctx, store.MonitorResultFilter{Monitor: monitor, Limit: 50})
	if err != nil {
		return nil, err
	}
	for _, res := range rs {
		var ev PredictionDriftEvidence
		if json.Unmarshal(res.Evidence, &ev) != nil || ev.Reference == nil {
			continue
		}
		if ev.Reference.Version == version && len(ev.Reference.Cuts) == 9 && len(ev.Reference.Counts) == 10 {
			return ev.Reference, nil
		}
	}
	return nil, nil
}

// endpointModel is the model an applied endpoint serves.
func (r *Runner) endpointModel(ctx context.Context, name string) (string, error) {
	eps, err := r.d.Store.Endpoints(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range eps {
		if e.Name == name {
			spec, err := serve.Stored(e)
			if err != nil {
				return "", err
			}
			return spec.Model, nil
		}
	}
	return "", fmt.Errorf("endpoint %s is not applied", name)
}

// ResponsibleAIEvidence is what a responsible_ai evaluation found in the
// pages the endpoint served in [Pages.From, Pages.To).
type ResponsibleAIEvidence struct {
	Endpoint           string           `json:"endpoint"`
	Model              string           `json:"model"`
	Pages              serve.PageWindow `json:"pages"`
	CatalogCoverage    *float64         `json:"catalog_coverage"`
	Diversity          *float64         `json:"diversity"`
	NewCreatorExposure *float64         `json:"new_creator_exposure"`
	MarketQuality      *QualityEvidence `json:"market_quality,omitempty"`
	Note               string           `json:"note,omitempty"`
}

func (r *Runner) responsibleAI(ctx context.Context, s Spec, now time.Time) (evaluation, error) {
	from := now.Add(-s.Window.D())
	ev := &ResponsibleAIEvidence{Endpoint: s.Endpoint}
	out := evaluation{evidence: ev}
	model, err := r.endpointModel(ctx, s.Endpoint)
	if err != nil {
		return out, err
	}
	ev.Model, out.model = model, model
	if r.d.Pages == nil {
		return out, errors.New("this process serves nothing: no served pages to read")
	}
	ev.Pages = r.d.Pages.Window(s.Endpoint, from, now)
	var checks []Check
	checks, ev.CatalogCoverage, ev.Diversity, ev.NewCreatorExposure, ev.Note = pageChecks(s, ev.Pages)
	if q := s.MarketQuality; q != nil {
		if r.d.Features == nil {
			out.checks = checks
			return out, errors.New("market quality: this process has no feature engine")
		}
		mq, qc, err := quality(ctx, r.d.Features, *q, "market_quality", from, now)
		ev.MarketQuality = mq
		checks = append(checks, qc...)
		if err != nil {
			out.checks = checks
			return out, fmt.Errorf("market quality: %w", err)
		}
	}
	out.checks = checks
	return out, nil
}

// pageChecks judges a window of served pages: catalog coverage (distinct
// titles shown / titles in the catalogs), diversity (the rows' mean
// intra-list diversity) and new creators' exposure (their share of the
// items shown).
func pageChecks(s Spec, w serve.PageWindow) (checks []Check, coverage, diversity, exposure *float64, note string) {
	judged := w.Pages >= int64(s.MinPages)
	if !judged {
		note = fmt.Sprintf("%d pages served in the window, fewer than min_pages %d", w.Pages, s.MinPages)
	}
	cov := float64(w.Titles) / float64(w.Catalog)
	div := w.DiversitySum / float64(w.Rows)
	exp := float64(w.NewCreatorItems) / float64(w.Items)
	for _, c := range []struct {
		name string
		b    *Bound
		v    float64
	}{{"catalog_coverage", s.CatalogCoverage, cov}, {"diversity", s.Diversity, div}, {"new_creator_exposure", s.NewCreatorExposure, exp}} {
		if c.b != nil {
			checks = append(checks, judge(c.name, c.v, c.b.Min, c.b.Max, judged, note))
		}
	}
	return checks, finite(cov), finite(div), finite(exp), note
}
