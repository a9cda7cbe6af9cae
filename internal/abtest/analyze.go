package abtest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Options configure Analyze.
type Options struct {
	// Control names the control variant. Required.
	Control string
	// Metrics are the columns to analyze, in this order. Default: every
	// Numeric column other than the covariates and the breakdown, in
	// header order.
	Metrics []string
	// Covariates map a metric to its pre-experiment column: such a metric
	// is also compared by CUPED, with theta pooled over the units of all
	// variants that have both values (a unit missing either is left out
	// of CUPED, not of Welch).
	Covariates map[string]string
	// Sequential adds the anytime-valid confidence sequence comparison, on
	// the unadjusted values (a covariate does not change it).
	Sequential bool
	// Alpha is the significance level; DefaultAlpha if 0.
	Alpha float64
	// Weights are the configured split, variant → weight (they need not
	// sum to 1); equal over the variants in the table if empty. A variant
	// with a weight and no units is reported with n 0.
	Weights map[string]float64
	// Tuning is the sequential tuning parameter N*; DefaultTuning if 0.
	Tuning float64
	// Breakdown names a column to break every metric down by: the
	// analysis is repeated for the units of each of its values.
	Breakdown string
	// Segments name columns to estimate heterogeneous effects along
	// (market, tenure bucket...): per metric, per value, per treatment,
	// Welch's comparison with Benjamini–Hochberg adjusted p-values and
	// Cochran's Q across the values (MetricReport.Segments).
	Segments []string
}

// MaxSegments bounds the distinct values of a breakdown column.
const MaxSegments = 10000

// Report is an experiment's analysis.
type Report struct {
	Control string    `json:"control"`
	Alpha   float64   `json:"alpha"`
	Units   int       `json:"units"`
	SRM     SRMResult `json:"srm"`
	// Metrics are in the order of Options.Metrics.
	Metrics []MetricReport `json:"metrics"`
}

// MetricReport is one metric: each variant's summary (control first, the
// others in the order the table first has them), and per treatment
// variant a comparison with the control by Welch, then CUPED (with a
// covariate), then the confidence sequence (Options.Sequential).
type MetricReport struct {
	Name        string           `json:"name"`
	Covariate   string           `json:"covariate,omitempty"`
	Variants    []VariantSummary `json:"variants"`
	Comparisons []Comparison     `json:"comparisons"`
	Breakdown   *Breakdown       `json:"breakdown,omitempty"`
	// Segments has one entry per Options.Segments column.
	Segments []HTE `json:"segments,omitempty"`
}

// VariantSummary is a variant's Summary of one metric.
type VariantSummary struct {
	Name string
	Summary
}

// MarshalJSON writes {"name", "n", "mean", "variance"}, NaN as null.
func (v VariantSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string `json:"name"`
		N        int    `json:"n"`
		Mean     jnum   `json:"mean"`
		Variance jnum   `json:"variance"`
	}{v.Name, v.N, jnum(v.Mean), jnum(v.Variance)})
}

// Breakdown is a metric's analysis repeated per value of a column.
type Breakdown struct {
	Column   string    `json:"column"`
	Segments []Segment `json:"segments"`
}

// Segment is the analysis of the units with one value of the breakdown
// column (the empty value for an empty cell). CUPED's theta is pooled
// over the segment's units.
type Segment struct {
	Value       string           `json:"value"`
	Units       int              `json:"units"`
	SRM         SRMResult        `json:"srm"`
	Variants    []VariantSummary `json:"variants"`
	Comparisons []Comparison     `json:"comparisons"`
}

// Analyze analyzes the experiment in t. Errors name what is wrong: an
// unknown control, metric, covariate, breakdown or weighted variant, a
// variant of the table without a weight, a metric or covariate column
// holding something other than numbers (with the line and column), a
// level outside (0, 1).
//
// It makes one pass over each metric column (two with a covariate),
// metrics in parallel.
func Analyze(t *Table, opts Options) (Report, error) {
	p, err := plan(t, opts)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Control: opts.Control, Alpha: p.alpha, Units: t.Rows, Metrics: make([]MetricReport, len(p.metrics))}
	rep.SRM = SRM(p.total, p.weights)

	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range p.metrics {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rep.Metrics[i] = p.metric(i)
		}()
	}
	wg.Wait()
	if len(opts.Segments) > 0 {
		if err := segments(t, opts, &rep); err != nil {
			return Report{}, err
		}
	}
	return rep, nil
}

// analysis is Analyze's validated plan.
type analysis struct {
	t          *Table
	alpha      float64
	tuning     float64
	sequential bool
	control    int
	names      []string  // variants: the table's, then those only weighted
	order      []int     // variant indices as reported: control first
	weights    []float64 // per variant
	metrics    []*Column
	breakdown  string
	covs       []*Column // per metric, nil without a covariate
	// breakdown: the segment of each row (nil without), the segments'
	// values in report order and the rows per segment and variant.
	seg     []uint32
	segs    []string
	segRank []int // segment code → position in segs
	rows    []int // [segment code*len(names) + variant], with a breakdown
	total   []int // rows per variant
}

func plan(t *Table, opts Options) (*analysis, error) {
	p := &analysis{t: t, alpha: opts.Alpha, tuning: opts.Tuning, sequential: opts.Sequential}
	if p.alpha == 0 {
		p.alpha = DefaultAlpha
	}
	if !(p.alpha > 0 && p.alpha < 1) {
		return nil, fmt.Errorf("alpha %g: must be in (0, 1)", opts.Alpha)
	}
	if p.tuning == 0 {
		p.tuning = DefaultTuning
	}
	if !(p.tuning > 0) || math.IsInf(p.tuning, 0) {
		return nil, fmt.Errorf("tuning %g: must be a positive number", opts.Tuning)
	}
	if err := checkShape(t); err != nil {
		return nil, err
	}
	if err := checkSegments(t, opts.Segments); err != nil {
		return nil, err
	}
	if err := p.planVariants(t, opts); err != nil {
		return nil, err
	}
	if err := p.planColumns(t, opts); err != nil {
		return nil, err
	}
	p.total = make([]int, len(p.names))
	nt := len(t.Variants)
	for _, v := range t.Variant {
		if int(v) >= nt {
			return nil, fmt.Errorf("%s: variant code %d of a table with %d variants", t.Name, v, nt)
		}
		p.total[v]++
	}
	return p, nil
}

// checkShape checks that a table built by hand has a value for every row.
func checkShape(t *Table) error {
	if len(t.Variant) != t.Rows {
		return fmt.Errorf("%s: %d rows but %d variant codes", t.Name, t.Rows, len(t.Variant))
	}
	for _, c := range t.Columns {
		n := len(c.Values)
		if c.Kind == Text {
			n = len(c.Codes)
			if c.tooMany {
				continue
			}
		}
		if n != t.Rows {
			return fmt.Errorf("%s: column %q has %d values for %d rows", t.Name, c.Name, n, t.Rows)
		}
	}
	return nil
}

func (p *analysis) planVariants(t *Table, opts Options) error {
	p.names = slices.Clone(t.Variants)
	index := make(map[string]int, len(p.names))
	for i, n := range p.names {
		index[n] = i
	}
	if len(opts.Weights) > 0 {
		var extra []string
		for v, w := range opts.Weights {
			if !(w > 0) || math.IsInf(w, 0) {
				return fmt.Errorf("weight %g of variant %q: must be a positive number", w, v)
			}
			if _, ok := index[v]; !ok {
				extra = append(extra, v)
			}
		}
		var missing []string
		for _, n := range p.names {
			if _, ok := opts.Weights[n]; !ok {
				missing = append(missing, strconv.Quote(n))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: variant %s has no weight; the weights name %s", t.Name,
				strings.Join(missing, ", "), quoteAll(sortedKeys(opts.Weights)))
		}
		slices.Sort(extra)
		for _, v := range extra {
			index[v] = len(p.names)
			p.names = append(p.names, v)
		}
	}
	p.weights = make([]float64, len(p.names))
	for i, n := range p.names {
		p.weights[i] = 1
		if w, ok := opts.Weights[n]; ok {
			p.weights[i] = w
		}
	}
	if opts.Control == "" {
		return errors.New("no control variant: name one")
	}
	c, ok := index[opts.Control]
	if !ok {
		return fmt.Errorf("%s: unknown control variant %q; the variants are %s", t.Name, opts.Control, quoteAll(t.Variants))
	}
	p.control = c
	p.order = append(p.order, c)
	for i := range p.names {
		if i != c {
			p.order = append(p.order, i)
		}
	}
	return nil
}

func (p *analysis) planColumns(t *Table, opts Options) error {
	colNames := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		colNames[i] = c.Name
	}
	lookup := func(what, name string) (*Column, error) {
		switch name {
		case UnitColumn, VariantColumn:
			return nil, fmt.Errorf("%s: %s %q: the %s column cannot be one", t.Name, what, name, name)
		}
		c := t.Column(name)
		if c == nil {
			return nil, fmt.Errorf("%s: unknown %s %q; the columns are %s", t.Name, what, name, quoteAll(colNames))
		}
		return c, nil
	}
	numeric := func(c *Column) error {
		if c.Kind == Numeric {
			return nil
		}
		n := c.notNumber
		return &InputError{File: t.Name, Line: n.line, Column: c.Name, Err: fmt.Errorf("%q is %s", n.value, n.reason)}
	}

	skip := map[string]bool{}
	for _, m := range sortedKeys(opts.Covariates) {
		pre := opts.Covariates[m]
		if t.Column(m) == nil {
			return fmt.Errorf("%s: covariate given for unknown metric %q; the columns are %s", t.Name, m, quoteAll(colNames))
		}
		if m == pre {
			return fmt.Errorf("%s: metric %q cannot be its own covariate", t.Name, m)
		}
		skip[pre] = true
	}
	if opts.Breakdown != "" {
		skip[opts.Breakdown] = true
	}
	for _, c := range opts.Segments {
		skip[c] = true
	}
	names := opts.Metrics
	if len(names) == 0 {
		for i := range t.Columns {
			c := &t.Columns[i]
			if skip[c.Name] {
				continue
			}
			if c.Kind == Numeric {
				names = append(names, c.Name)
			} else if c.turned {
				// Numbers, then something else: a metric with a bad
				// value more likely than a text column.
				return fmt.Errorf("%w (name the metrics to leave column %q out)", numeric(c), c.Name)
			}
		}
		if len(names) == 0 {
			return fmt.Errorf("%s: no numeric metric column; the columns are %s", t.Name, quoteAll(colNames))
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		c, err := lookup("metric", n)
		if err != nil {
			return err
		}
		if err := numeric(c); err != nil {
			return err
		}
		var cov *Column
		if pre, ok := opts.Covariates[n]; ok {
			if cov, err = lookup("covariate", pre); err != nil {
				return err
			}
			if err := numeric(cov); err != nil {
				return err
			}
		}
		p.metrics = append(p.metrics, c)
		p.covs = append(p.covs, cov)
	}
	for _, m := range sortedKeys(opts.Covariates) {
		if !seen[m] {
			return fmt.Errorf("%s: covariate given for metric %q, which is not analyzed", t.Name, m)
		}
	}
	if opts.Breakdown != "" {
		c, err := lookup("breakdown column", opts.Breakdown)
		if err != nil {
			return err
		}
		p.breakdown = c.Name
		if err := p.planBreakdown(c); err != nil {
			return err
		}
	}
	return nil
}

// planBreakdown codes each row's segment and orders the segments: by
// value, numerically for a Numeric column.
func (p *analysis) planBreakdown(c *Column) error {
	t := p.t
	var values []string
	var less func(a, b int) int
	switch {
	case c.Kind == Text && c.tooMany:
		return fmt.Errorf("%s: breakdown column %q has more than %d distinct values", t.Name, c.Name, MaxLevels)
	case c.Kind == Text:
		p.seg, values = c.Codes, c.Levels
		less = func(a, b int) int { return cmp.Compare(values[a], values[b]) }
	default:
		p.seg = make([]uint32, t.Rows)
		index := map[float64]uint32{}
		var nums []float64
		for i, v := range c.Values {
			if v == 0 {
				v = 0 // −0 is 0
			}
			if math.IsNaN(v) {
				v = math.Inf(-1) // one key for every empty cell: NaN ≠ NaN
			}
			code, ok := index[v]
			if !ok {
				if len(nums) == MaxSegments {
					return fmt.Errorf("%s: breakdown column %q has more than %d distinct values", t.Name, c.Name, MaxSegments)
				}
				code = uint32(len(nums))
				index[v] = code
				nums = append(nums, v)
			}
			p.seg[i] = code
		}
		values = make([]string, len(nums))
		for i, v := range nums {
			if !math.IsInf(v, -1) {
				values[i] = strconv.FormatFloat(v, 'g', -1, 64)
			}
		}
		less = func(a, b int) int { return cmp.Compare(nums[a], nums[b]) }
	}
	if len(values) > MaxSegments {
		return fmt.Errorf("%s: breakdown column %q has more than %d distinct values", t.Name, c.Name, MaxSegments)
	}
	nv := len(p.names)
	p.rows = make([]int, len(values)*nv)
	for i, s := range p.seg {
		if int(s) >= len(values) {
			return fmt.Errorf("%s: breakdown column %q: code %d of %d values", t.Name, c.Name, s, len(values))
		}
		p.rows[int(s)*nv+int(t.Variant[i])]++
	}
	// Only the values that occur: a column turned Text may have levels
	// that no row has any more.
	var order []int
	for s := range values {
		if slices.ContainsFunc(p.rows[s*nv:(s+1)*nv], func(n int) bool { return n > 0 }) {
			order = append(order, s)
		}
	}
	slices.SortFunc(order, less)
	p.segRank = make([]int, len(values))
	for i := range p.segRank {
		p.segRank[i] = -1
	}
	for r, s := range order {
		p.segRank[s] = r
		p.segs = append(p.segs, values[s])
	}
	return nil
}

// counts returns the rows per variant of segment code s.
func (p *analysis) counts(s int) []int {
	nv := len(p.names)
	return p.rows[s*nv : (s+1)*nv]
}

// metric analyzes metric i: one pass for the moments per segment and
// variant, one more for the comoments with a covariate.
func (p *analysis) metric(i int) MetricReport {
	t, c, cov := p.t, p.metrics[i], p.covs[i]
	nv := len(p.names)
	nseg := 1
	if p.seg != nil {
		nseg = len(p.segRank)
	}
	m := make([]moments, nseg*nv)
	if p.seg == nil {
		for r, x := range c.Values {
			if x == x {
				m[t.Variant[r]].add(x)
			}
		}
	} else {
		for r, x := range c.Values {
			if x == x {
				m[int(p.seg[r])*nv+int(t.Variant[r])].add(x)
			}
		}
	}
	var cm []comoments
	if cov != nil {
		cm = make([]comoments, nseg*nv)
		pre := cov.Values
		for r, y := range c.Values {
			x := pre[r]
			if x == x && y == y {
				g := int(t.Variant[r])
				if p.seg != nil {
					g += int(p.seg[r]) * nv
				}
				cm[g].add(x, y)
			}
		}
	}
	out := MetricReport{Name: c.Name}
	if cov != nil {
		out.Covariate = cov.Name
	}
	if p.seg == nil {
		out.Variants, out.Comparisons = p.compare(m, cm, cov)
		return out
	}
	// The whole: the segments merged.
	all := make([]moments, nv)
	var allc []comoments
	if cov != nil {
		allc = make([]comoments, nv)
	}
	for s := range nseg {
		for v := range nv {
			all[v].merge(m[s*nv+v])
			if cov != nil {
				allc[v].merge(cm[s*nv+v])
			}
		}
	}
	out.Variants, out.Comparisons = p.compare(all, allc, cov)
	out.Breakdown = &Breakdown{Column: p.breakdown, Segments: make([]Segment, len(p.segs))}
	for s, r := range p.segRank {
		if r < 0 {
			continue
		}
		seg := Segment{Value: p.segs[r], SRM: SRM(p.counts(s), p.weights)}
		for _, n := range p.counts(s) {
			seg.Units += n
		}
		var sc []comoments
		if cov != nil {
			sc = cm[s*nv : (s+1)*nv]
		}
		seg.Variants, seg.Comparisons = p.compare(m[s*nv:(s+1)*nv], sc, cov)
		out.Breakdown.Segments[r] = seg
	}
	return out
}

// compare summarizes the variants of one group of units and compares each
// treatment with the control.
func (p *analysis) compare(m []moments, cm []comoments, cov *Column) ([]VariantSummary, []Comparison) {
	sums := make([]Summary, len(m))
	for v := range m {
		sums[v] = m[v].summary()
	}
	vs := make([]VariantSummary, 0, len(p.order))
	for _, v := range p.order {
		vs = append(vs, VariantSummary{Name: p.names[v], Summary: sums[v]})
	}
	var theta, mu float64
	if cov != nil {
		var pooled comoments
		for _, c := range cm {
			pooled.merge(c)
		}
		theta, mu = cupedTheta(pooled), pooled.mx
	}
	ctl := sums[p.control]
	var cs []Comparison
	for _, v := range p.order[1:] {
		name := p.names[v]
		w := Welch(ctl, sums[v], p.alpha)
		w.Variant = name
		cs = append(cs, w)
		if cov != nil {
			c := cupedCompare(cm[p.control], cm[v], theta, mu, p.alpha, cov.Name)
			c.Variant = name
			cs = append(cs, c)
		}
		if p.sequential {
			s := Sequential(ctl, sums[v], p.alpha, p.tuning)
			s.Variant = name
			cs = append(cs, s)
		}
	}
	return vs, cs
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
