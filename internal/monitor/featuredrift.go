package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/stat"
	"github.com/baton-ml/baton/internal/store"
)

// refColumn is one feature's column of a reference training set.
type refColumn struct {
	// text holds every non-empty cell; nums the same as sorted numbers
	// when every one of them is a number.
	text    []string
	nums    []float64
	numeric bool
	nulls   int
}

// reference is a training set read for a monitor's features.
type reference struct {
	digest string
	rows   int
	cols   map[string]*refColumn
}

// readReference reads the columns names of a CSV training set; a name
// the header lacks is left out (the caller reports it).
func readReference(r io.Reader, name string, names []string) (*reference, error) {
	cr := csvtable.NewReader(r, name)
	header, _, err := cr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: errors.New("empty file: want a header line")}
	}
	if err != nil {
		return nil, err
	}
	ref := &reference{cols: map[string]*refColumn{}}
	idx := map[int]*refColumn{}
	for i, h := range header {
		if slices.Contains(names, h) {
			c := &refColumn{numeric: true}
			ref.cols[h], idx[i] = c, c
		}
	}
	for {
		rec, _, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		ref.rows++
		for i, c := range idx {
			cell := rec[i]
			if len(cell) == 0 {
				c.nulls++
				continue
			}
			v, ok := csvtable.ParseFloat(cell)
			if ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
				// Missing, as drift reads a NaN: no share or decile has room
				// for it.
				c.nulls++
				continue
			}
			c.text = append(c.text, string(cell))
			if !ok {
				c.numeric, c.nums = false, nil
			} else if c.numeric {
				c.nums = append(c.nums, v)
			}
		}
	}
	for _, c := range ref.cols {
		slices.Sort(c.nums)
	}
	return ref, nil
}

// refCache keeps the last few references read, by digest and features.
type refCache struct {
	mu   sync.Mutex
	max  int
	keys []string
	refs map[string]*reference
}

func newRefCache(n int) *refCache { return &refCache{max: n, refs: map[string]*reference{}} }

func (c *refCache) get(key string) *reference {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refs[key]
}

func (c *refCache) put(key string, r *reference) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.refs[key]; !ok {
		c.keys = append(c.keys, key)
	}
	c.refs[key] = r
	for len(c.keys) > c.max {
		delete(c.refs, c.keys[0])
		c.keys = c.keys[1:]
	}
}

// refSource says where a reference came from, in the evidence.
type refSource struct {
	Model    string `json:"model,omitempty"`
	Version  int    `json:"version,omitempty"`
	Artifact string `json:"artifact"`
	Digest   string `json:"digest"`
	Rows     int    `json:"rows"`
}

// resolveVersion finds a model's version by number, state or alias, as
// the registry does (registry.Resolve).
func resolveVersion(ctx context.Context, st store.ModelStore, model, ref string) (store.ModelVersion, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		return st.ModelVersion(ctx, model, n)
	}
	vs, err := st.ModelVersions(ctx, model)
	if err != nil {
		return store.ModelVersion{}, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if string(vs[i].State) == ref || slices.Contains(vs[i].Aliases, ref) {
			return vs[i], nil
		}
	}
	return store.ModelVersion{}, fmt.Errorf("model %s has no version %q (a number, a state or an alias): %w", model, ref, store.ErrNotFound)
}

// reference finds and reads the reference of s: its model version's
// training set, or its artifact.
func (r *Runner) reference(ctx context.Context, s Spec) (*reference, refSource, error) {
	var src refSource
	if r.d.Blobs == nil {
		return nil, src, errors.New("this process has no artifact store to read the reference from")
	}
	path := s.Reference.Artifact
	if m := s.Reference.Model; m != "" {
		v, err := resolveVersion(ctx, r.d.Store, m, s.Reference.Version)
		if err != nil {
			return nil, src, fmt.Errorf("reference: %w", err)
		}
		src.Model, src.Version = m, v.Version
		var lin registry.Lineage
		if len(v.Lineage) > 0 {
			if err := json.Unmarshal(v.Lineage, &lin); err != nil {
				return nil, src, fmt.Errorf("reference: model %s version %d: its lineage does not decode: %w", m, v.Version, err)
			}
		}
		if lin.TrainingSet == "" {
			return nil, src, fmt.Errorf("reference: model %s version %d has no training set in its lineage (register it with --training-set RUN/STEP/NAME)", m, v.Version)
		}
		path, src.Digest = lin.TrainingSet, lin.TrainingSetDigest
	}
	src.Artifact = path
	if src.Digest == "" {
		p, err := artifact.ParsePath(path)
		if err != nil {
			return nil, src, fmt.Errorf("reference %s: %w", path, err)
		}
		a, err := artifact.Resolve(ctx, r.d.Store, p)
		if err != nil {
			return nil, src, fmt.Errorf("reference %s: %w", path, err)
		}
		src.Digest = a.Digest
	}
	key := src.Digest + "\x00" + strings.Join(s.Features, ",")
	if ref := r.refs.get(key); ref != nil {
		src.Rows = ref.rows
		return ref, src, nil
	}
	rc, err := r.d.Blobs.Open(ctx, src.Digest)
	if err != nil {
		return nil, src, fmt.Errorf("reference %s: %w", path, err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if magic, _ := br.Peek(4); string(magic) == "PAR1" {
		return nil, src, fmt.Errorf("reference %s is Parquet: a monitor reads a CSV training set (build it with --out FILE.csv)", path)
	}
	ref, err := readReference(br, path, s.Features)
	if err != nil {
		return nil, src, fmt.Errorf("reference: %w", err)
	}
	ref.digest = src.Digest
	r.refs.put(key, ref)
	src.Rows = ref.rows
	return ref, src, nil
}

// FeatureDriftEvidence is what a feature_drift evaluation found.
type FeatureDriftEvidence struct {
	Reference refSource `json:"reference"`
	At        time.Time `json:"at"`
	// Keys counts the entity keys with an event in the source window: the
	// current population.
	SourceWindow Duration       `json:"source_window"`
	Keys         int            `json:"keys"`
	Features     []FeatureDrift `json:"features"`
}

// FeatureDrift is one feature's comparison with its reference.
type FeatureDrift struct {
	Feature string `json:"feature"`
	// Type is numeric or string; Test the p-value's (ks, or chi2 for a
	// string feature).
	Type          string   `json:"type"`
	Test          string   `json:"test"`
	ReferenceN    int      `json:"reference_n"`
	CurrentN      int      `json:"current_n"`
	ReferenceNull float64  `json:"reference_null_share"`
	CurrentNull   float64  `json:"current_null_share"`
	PSI           *float64 `json:"psi"`
	KS            *float64 `json:"ks_statistic,omitempty"`
	PValue        *float64 `json:"p_value"`
	ReferenceMean *float64 `json:"reference_mean,omitempty"`
	CurrentMean   *float64 `json:"current_mean,omitempty"`
	// The nine deciles of each side (numeric), or the categories whose
	// share moved most (string).
	ReferenceDeciles []float64       `json:"reference_deciles,omitempty"`
	CurrentDeciles   []float64       `json:"current_deciles,omitempty"`
	Moved            []CategoryShare `json:"moved,omitempty"`
	Note             string          `json:"note,omitempty"`
}

// CategoryShare is a category's share on each side.
type CategoryShare struct {
	Value     string  `json:"value"`
	Reference float64 `json:"reference"`
	Current   float64 `json:"current"`
}

func (r *Runner) featureDrift(ctx context.Context, s Spec, now time.Time) (evaluation, error) {
	ev := &FeatureDriftEvidence{At: now.UTC(), SourceWindow: s.SourceWindow}
	out := evaluation{evidence: ev, model: s.Reference.Model}
	if r.d.Features == nil {
		return out, errors.New("this process has no feature engine")
	}
	feats, err := r.d.Features.Catalog().Select(s.Features)
	if err != nil {
		return out, err
	}
	ref, src, err := r.reference(ctx, s)
	ev.Reference = src
	if err != nil {
		return out, err
	}
	snap, err := r.d.Features.Snapshot(ctx, feats, s.SourceWindow.D(), now)
	if err != nil {
		return out, fmt.Errorf("current values: %w", err)
	}
	ev.Keys = len(snap.Keys)
	ev.Features, out.checks = compareFeatures(s, ref, snap)
	return out, nil
}

// compareFeatures compares each feature's current values with its
// reference column: PSI over the reference's deciles and the two-sample KS
// test for a number, PSI over the categories and the chi-square test for a
// string. Nulls are left out of both sides (their shares are reported).
func compareFeatures(s Spec, ref *reference, snap *feature.Snapshot) ([]FeatureDrift, []Check) {
	var out []FeatureDrift
	var checks []Check
	for _, col := range snap.Columns {
		name := col.Feature.Name
		d := FeatureDrift{Feature: name, Type: "numeric", Test: "ks"}
		str := col.Type == feature.String
		if str {
			d.Type, d.Test = "string", "chi2"
		}
		var curNums []float64
		var curText []string
		nulls := 0
		for _, v := range col.Values {
			switch {
			case v.Kind == feature.KindNull:
				nulls++
			case str:
				curText = append(curText, v.Str)
			default:
				curNums = append(curNums, v.Num)
			}
		}
		d.CurrentN = len(col.Values) - nulls
		if len(col.Values) > 0 {
			d.CurrentNull = float64(nulls) / float64(len(col.Values))
		}
		rc := ref.cols[name]
		psi, p := math.NaN(), math.NaN()
		note := ""
		switch {
		case rc == nil:
			note = "the reference has no column " + name
		case !str && !rc.numeric:
			note = "the reference column " + name + " is not numeric"
		default:
			d.ReferenceN = len(rc.text)
			if ref.rows > 0 {
				d.ReferenceNull = float64(rc.nulls) / float64(ref.rows)
			}
			if d.ReferenceN < s.MinSamples || d.CurrentN < s.MinSamples {
				note = fmt.Sprintf("%d reference and %d current values: fewer than min_samples %d", d.ReferenceN, d.CurrentN, s.MinSamples)
			}
			if d.ReferenceN == 0 || d.CurrentN == 0 {
				break
			}
			if str {
				psi = stat.PSICategorical(rc.text, curText)
				cats, table := stat.CategoryCounts(rc.text, curText)
				_, p, _ = stat.ChiSquareIndependence(table[:])
				d.Moved = moved(cats, table, 5)
				break
			}
			slices.Sort(curNums)
			psi = stat.PSISorted(rc.nums, curNums)
			var ks float64
			ks, p = stat.KS2Sorted(rc.nums, curNums)
			d.KS = finite(ks)
			rd, cd := stat.Deciles(rc.nums), stat.Deciles(curNums)
			d.ReferenceDeciles, d.CurrentDeciles = rd[:], cd[:]
			d.ReferenceMean, d.CurrentMean = finite(mean(rc.nums)), finite(mean(curNums))
		}
		d.PSI, d.PValue, d.Note = finite(psi), finite(p), note
		judged := note == ""
		if s.PSIMax != nil {
			checks = append(checks, judge("psi/"+name, psi, nil, s.PSIMax, judged, note))
		}
		if s.KSAlpha != nil {
			checks = append(checks, judge("p_value/"+name, p, s.KSAlpha, nil, judged, note))
		}
		out = append(out, d)
	}
	return out, checks
}

// moved lists the n categories whose share changed most.
func moved(cats []string, table [2][]float64, n int) []CategoryShare {
	var nr, nc float64
	for i := range cats {
		nr += table[0][i]
		nc += table[1][i]
	}
	out := make([]CategoryShare, len(cats))
	for i, c := range cats {
		out[i] = CategoryShare{Value: c, Reference: round6(table[0][i] / nr), Current: round6(table[1][i] / nc)}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return math.Abs(out[i].Current-out[i].Reference) > math.Abs(out[j].Current-out[j].Reference)
	})
	return out[:min(n, len(out))]
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// finite is v, or nil for a NaN or an infinity (JSON has neither).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
