// Package quality scores titles from their encoding and playback signals
// (bitrate, VMAF, rebuffering, startup time, loudness, subtitles...):
// a ridge regression fitted on a labelled sample of human ratings turns a
// title's signals into a predicted rating, and titles predicted below a
// threshold are flagged with the signals that put them there.
//
// The weights are learned, not set by hand; what is fixed is how a
// signal enters the model (bitrate and startup time on a log scale,
// loudness as its distance from the −24 LUFS broadcast target), because
// those are properties of the measurements, not of the data.
package quality

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/baton-ml/baton/internal/fault"
)

// ModelFormat is the version of the model file's layout (2: the rating
// scale, Scale).
const ModelFormat = 2

// LoudnessTarget is the integrated loudness a mix should have (ATSC A/85:
// −24 LKFS); audio_lufs enters the model as the distance from it.
const LoudnessTarget = -24.0

// DefaultThreshold is the predicted rating under which a title is
// flagged, on the 1–5 scale of the ratings (train --threshold changes it).
const DefaultThreshold = 3.0

// Model is a fitted quality model.
type Model struct {
	Format int `json:"format"`
	// Signals are the signal columns, in the order of the weights.
	Signals []string `json:"signals"`
	// Transforms say how each signal enters ("log", "log1p", "lufs_dev", "linear").
	Transforms []string  `json:"transforms"`
	Mean       []float64 `json:"mean"`
	Std        []float64 `json:"std"`
	Weights    []float64 `json:"weights"`
	// WeightSE are the weights' standard errors (the ridge estimator's
	// sandwich, residual variance from the fit): a signal whose weight is
	// within two of them of 0 is not named as a reason.
	WeightSE  []float64 `json:"weight_se"`
	Intercept float64   `json:"intercept"`
	Threshold float64   `json:"threshold"`
	// Scale is the lowest and highest rating the model was fitted on: a
	// predicted rating is clamped to it (a linear model extrapolates past
	// the scale for signals beyond those it saw).
	Scale [2]float64 `json:"scale"`
	// Bounds are, per signal, the acceptable limit on its bad side: the
	// 5th percentile (a signal whose weight is positive) or the 95th (a
	// negative weight) of the titles rated at or above the threshold.
	// A value beyond it is a reason when a title is flagged.
	Bounds  []Bound `json:"bounds"`
	Metrics Metrics `json:"metrics"`
}

// Bound is a signal's acceptable limit: values below Limit (Low) or
// above it (!Low) are out of range; for loudness, the distance from the
// target above it.
type Bound struct {
	Low   bool    `json:"low"`
	Limit float64 `json:"limit"`
}

// Metrics are measured on the held-out titles (one rated title in five,
// by a hash of its id) with a model fitted on the rest; the saved model
// is then refitted on every rated title.
type Metrics struct {
	Rated        int     `json:"rated"`
	Train        int     `json:"train"`
	Test         int     `json:"test"`
	RMSE         float64 `json:"rmse"`
	RMSEBaseline float64 `json:"rmse_baseline"` // predicting the training mean
	R2           float64 `json:"r2"`
	MAE          float64 `json:"mae"`
	Unrated      int     `json:"unrated_signals"` // titles with signals and no rating (not used)
	Missing      int     `json:"ratings_without_signals"`
}

// transformOf says how a signal enters the model.
func transformOf(signal string) string {
	switch signal {
	case "bitrate_kbps":
		return "log"
	case "startup_ms":
		return "log1p"
	case "audio_lufs":
		return "lufs_dev"
	}
	return "linear"
}

func transform(kind string, v float64) float64 {
	switch kind {
	case "log":
		return math.Log(math.Max(v, 1e-9))
	case "log1p":
		return math.Log1p(math.Max(v, 0))
	case "lufs_dev":
		return math.Abs(v - LoudnessTarget)
	}
	return v
}

// TrainOptions tune Train.
type TrainOptions struct {
	// L2 is the ridge penalty on standardized weights; 1 if 0.
	L2 float64
	// Threshold is the flagging cut on the rating scale; DefaultThreshold if 0.
	Threshold float64
}

// Train fits the model on the rated titles of s (ratings: title →
// rating). It needs at least 10 rated titles with signals, and ratings
// that vary.
func Train(ctx context.Context, s *Signals, ratings map[string]float64, opts TrainOptions) (*Model, error) {
	l2 := opts.L2
	if l2 == 0 {
		l2 = 1
	}
	if !(l2 > 0) || math.IsInf(l2, 0) {
		return nil, fault.Invalidf("l2", "%g: must be a positive number", opts.L2)
	}
	th := opts.Threshold
	if th == 0 {
		th = DefaultThreshold
	}
	if math.IsNaN(th) || math.IsInf(th, 0) {
		return nil, fault.Invalidf("threshold", "%g: must be a number", th)
	}
	m := &Model{Format: ModelFormat, Signals: slices.Clone(s.Names), Threshold: th}
	for _, n := range s.Names {
		m.Transforms = append(m.Transforms, transformOf(n))
	}
	var rows []int
	var ys []float64
	seen := map[string]bool{}
	for i, t := range s.Titles {
		seen[t] = true
		if r, ok := ratings[t]; ok {
			rows = append(rows, i)
			ys = append(ys, r)
		} else {
			m.Metrics.Unrated++
		}
	}
	for t := range ratings {
		if !seen[t] {
			m.Metrics.Missing++
		}
	}
	m.Metrics.Rated = len(rows)
	if len(rows) < 10 {
		return nil, fault.Invalidf("ratings", "%d rated titles have signals: at least 10 are needed", len(rows))
	}
	if stat.Variance(ys, nil) == 0 {
		return nil, fault.Invalidf("ratings", "every rating is %g: nothing to learn", ys[0])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Held-out evaluation.
	var trX, teX []int
	var trY, teY []float64
	for k, i := range rows {
		if heldOut(s.Titles[i]) {
			teX, teY = append(teX, i), append(teY, ys[k])
		} else {
			trX, trY = append(trX, i), append(trY, ys[k])
		}
	}
	m.Metrics.Train, m.Metrics.Test = len(trX), len(teX)
	if len(trX) >= 5 && len(teX) >= 2 {
		if err := m.fit(s, trX, trY, l2); err != nil {
			return nil, err
		}
		base := stat.Mean(trY, nil)
		var se, sb, ae, tss float64
		teMean := stat.Mean(teY, nil)
		for k, i := range teX {
			p := m.predict(s.Row(i))
			se += (p - teY[k]) * (p - teY[k])
			sb += (base - teY[k]) * (base - teY[k])
			ae += math.Abs(p - teY[k])
			tss += (teY[k] - teMean) * (teY[k] - teMean)
		}
		n := float64(len(teX))
		m.Metrics.RMSE, m.Metrics.RMSEBaseline, m.Metrics.MAE = math.Sqrt(se/n), math.Sqrt(sb/n), ae/n
		if tss > 0 {
			m.Metrics.R2 = 1 - se/tss
		}
	}
	if err := m.fit(s, rows, ys, l2); err != nil {
		return nil, err
	}
	m.bounds(s, rows, ys)
	return m, nil
}

func heldOut(title string) bool {
	h := fnv.New64a()
	h.Write([]byte(title))
	return h.Sum64()%5 == 0
}

// fit solves the ridge regression on standardized transformed signals.
func (m *Model) fit(s *Signals, rows []int, ys []float64, l2 float64) error {
	p := len(m.Signals)
	n := len(rows)
	x := make([]float64, n*p)
	for k, i := range rows {
		for j, v := range s.Row(i) {
			x[k*p+j] = transform(m.Transforms[j], v)
		}
	}
	m.Mean, m.Std = make([]float64, p), make([]float64, p)
	col := make([]float64, n)
	for j := range p {
		for k := range n {
			col[k] = x[k*p+j]
		}
		m.Mean[j], m.Std[j] = stat.PopMeanStdDev(col, nil)
		if !(m.Std[j] > 1e-12) {
			m.Std[j] = 1 // constant: its weight stays 0
		}
		for k := range n {
			x[k*p+j] = (x[k*p+j] - m.Mean[j]) / m.Std[j]
		}
	}
	m.Intercept = stat.Mean(ys, nil)
	m.Scale = [2]float64{slices.Min(ys), slices.Max(ys)}
	yc := make([]float64, n)
	for k := range n {
		yc[k] = ys[k] - m.Intercept
	}
	X := mat.NewDense(n, p, x)
	var a mat.Dense
	a.Mul(X.T(), X)
	for j := range p {
		a.Set(j, j, a.At(j, j)+l2)
	}
	var b mat.VecDense
	b.MulVec(X.T(), mat.NewVecDense(n, yc))
	var w mat.VecDense
	if err := w.SolveVec(&a, &b); err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	m.Weights = make([]float64, p)
	for j := range p {
		m.Weights[j] = w.AtVec(j)
	}
	// Cov(w) = s² A⁻¹ XᵀX A⁻¹ with A = XᵀX + λI, s² the residual variance.
	var fitted mat.VecDense
	fitted.MulVec(X, &w)
	var rss float64
	for k := range n {
		d := yc[k] - fitted.AtVec(k)
		rss += d * d
	}
	s2 := rss / float64(max(n-p-1, 1))
	var ainv, xtx, cov mat.Dense
	if err := ainv.Inverse(&a); err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	xtx.Mul(X.T(), X)
	cov.Mul(&ainv, &xtx)
	cov.Mul(&cov, &ainv)
	m.WeightSE = make([]float64, p)
	for j := range p {
		m.WeightSE[j] = math.Sqrt(s2 * cov.At(j, j))
	}
	return nil
}

// material says whether signal j's weight is told apart from 0 (two
// standard errors): only then can it be a reason.
func (m *Model) material(j int) bool { return math.Abs(m.Weights[j]) >= 2*m.WeightSE[j] }

// contributions are each signal's push on the predicted rating: weight ×
// standardized value.
func (m *Model) contributions(raw []float64, out []float64) {
	for j, v := range raw {
		out[j] = m.Weights[j] * (transform(m.Transforms[j], v) - m.Mean[j]) / m.Std[j]
	}
}

func (m *Model) predict(raw []float64) float64 {
	c := make([]float64, len(raw))
	m.contributions(raw, c)
	return m.rating(c)
}

// rating is the predicted rating from the signals' contributions, on the
// scale the model was fitted on.
func (m *Model) rating(contrib []float64) float64 {
	y := m.Intercept
	for _, v := range contrib {
		y += v
	}
	return clamp(y, m.Scale[0], m.Scale[1])
}

func (m *Model) bounds(s *Signals, rows []int, ys []float64) {
	m.Bounds = make([]Bound, len(m.Signals))
	var good []int
	for k, i := range rows {
		if ys[k] >= m.Threshold {
			good = append(good, i)
		}
	}
	if len(good) == 0 {
		good = rows // no title rated good enough: bounds from all of them
	}
	vals := make([]float64, len(good))
	for j := range m.Signals {
		for k, i := range good {
			vals[k] = s.Row(i)[j]
		}
		slices.Sort(vals)
		// The bad side is where the signal lowers the rating: for a
		// transform that folds (loudness), the larger distance.
		low := m.Weights[j] > 0
		if m.Transforms[j] == "lufs_dev" {
			for k, i := range good {
				vals[k] = transform("lufs_dev", s.Row(i)[j])
			}
			slices.Sort(vals)
			low = false
		}
		q := 0.95
		if low {
			q = 0.05
		}
		m.Bounds[j] = Bound{Low: low, Limit: stat.Quantile(q, stat.LinInterp, vals, nil)}
	}
}

// Check says whether the model can score.
func (m *Model) Check() error {
	if m.Format != ModelFormat {
		return fault.Invalidf("format", "model format %d; this baton reads %d", m.Format, ModelFormat)
	}
	p := len(m.Signals)
	if p == 0 || len(m.Transforms) != p || len(m.Mean) != p || len(m.Std) != p || len(m.Weights) != p || len(m.WeightSE) != p || len(m.Bounds) != p {
		return fault.Invalidf("signals", "%d signals but %d transforms, %d means, %d deviations, %d weights, %d standard errors, %d bounds",
			p, len(m.Transforms), len(m.Mean), len(m.Std), len(m.Weights), len(m.WeightSE), len(m.Bounds))
	}
	for j := range p {
		if m.Transforms[j] != transformOf(m.Signals[j]) {
			return fault.Invalidf("transforms", "signal %q enters as %q here, %q in the model", m.Signals[j], transformOf(m.Signals[j]), m.Transforms[j])
		}
		if !finite(m.Mean[j]) || !finite(m.Weights[j]) || !finite(m.Bounds[j].Limit) || !(m.Std[j] > 0) || !finite(m.Std[j]) || !(m.WeightSE[j] >= 0) || !finite(m.WeightSE[j]) {
			return fault.Invalidf("weights", "signal %q: weight %g, mean %g, deviation %g, bound %g", m.Signals[j], m.Weights[j], m.Mean[j], m.Std[j], m.Bounds[j].Limit)
		}
	}
	if !finite(m.Intercept) || !finite(m.Threshold) {
		return fault.Invalidf("intercept", "intercept %g, threshold %g", m.Intercept, m.Threshold)
	}
	if !finite(m.Scale[0]) || !finite(m.Scale[1]) || !(m.Scale[0] < m.Scale[1]) {
		return fault.Invalidf("scale", "ratings from %g to %g: want the lowest below the highest", m.Scale[0], m.Scale[1])
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ReadModel decodes and checks a model file.
func ReadModel(r io.Reader, name string) (*Model, error) {
	var m Model
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fault.Errorf(fault.Invalid, "%s: %w", name, err)
	}
	if err := m.Check(); err != nil {
		return nil, fault.Errorf(fault.Invalid, "%s: %w", name, err)
	}
	return &m, nil
}

// Write encodes the model as JSON.
func (m *Model) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(m)
}

// Shard is a part of the titles: those whose id hashes to Index modulo
// Count, so that a title stays in its shard when the file changes.
type Shard struct{ Index, Count int }

// ParseShard reads "I/N" (0 ≤ I < N).
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fault.Invalidf("shard", "%q: want I/N with 0 ≤ I < N, as 0/4", s)
	}
	return Shard{i, n}, nil
}

// Has says whether title is in the shard.
func (sh Shard) Has(title string) bool {
	if sh.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(title))
	return h.Sum64()%uint64(sh.Count) == uint64(sh.Index)
}

// Score is a title's predicted rating and, when flagged or beyond a
// bound, why.
type Score struct {
	Title   string   `json:"title"`
	Score   float64  `json:"score"`
	Flagged bool     `json:"flagged"`
	Reasons []string `json:"reasons"`
}

// Score scores the titles of s in shard (every title: Shard{0, 1}),
// flagging those predicted below threshold (the model's if NaN). The
// signal columns must include the model's.
func (m *Model) Score(ctx context.Context, s *Signals, shard Shard, threshold float64) ([]Score, error) {
	if math.IsNaN(threshold) {
		threshold = m.Threshold
	}
	cols := make([]int, len(m.Signals))
	for j, n := range m.Signals {
		cols[j] = slices.Index(s.Names, n)
		if cols[j] < 0 {
			return nil, fault.Invalidf("signals", "%s: no column %q, which the model uses; the columns are %s", s.File, n, strings.Join(s.Names, ","))
		}
	}
	raw := make([]float64, len(m.Signals))
	contrib := make([]float64, len(m.Signals))
	var out []Score
	for i, t := range s.Titles {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if !shard.Has(t) {
			continue
		}
		row := s.Row(i)
		for j, c := range cols {
			raw[j] = row[c]
		}
		m.contributions(raw, contrib)
		y := m.rating(contrib)
		sc := Score{Title: t, Score: y, Flagged: y < threshold, Reasons: []string{}}
		type reason struct {
			text string
			c    float64
		}
		var rs []reason
		for j := range raw {
			if !(contrib[j] < 0) || !m.material(j) {
				continue // not lowering the score, or by an amount the fit cannot tell from 0
			}
			b := m.Bounds[j]
			v := transform(m.Transforms[j], raw[j])
			if m.Transforms[j] != "lufs_dev" {
				v = raw[j]
			}
			switch {
			case b.Low && v < b.Limit:
				rs = append(rs, reason{fmt.Sprintf("%s %s below %s", m.Signals[j], num(raw[j]), num(b.Limit)), contrib[j]})
			case !b.Low && v > b.Limit && m.Transforms[j] == "lufs_dev":
				rs = append(rs, reason{fmt.Sprintf("%s %s is %s from %g LUFS, more than %s", m.Signals[j], num(raw[j]), num(v), LoudnessTarget, num(b.Limit)), contrib[j]})
			case !b.Low && v > b.Limit:
				rs = append(rs, reason{fmt.Sprintf("%s %s above %s", m.Signals[j], num(raw[j]), num(b.Limit)), contrib[j]})
			}
		}
		slices.SortStableFunc(rs, func(a, b reason) int { return cmpFloat(a.c, b.c) })
		for _, r := range rs {
			sc.Reasons = append(sc.Reasons, r.text)
		}
		if sc.Flagged && len(rs) == 0 {
			// No signal out of range alone: name the two that pull the
			// score down most.
			idx := make([]int, len(contrib))
			for j := range idx {
				idx[j] = j
			}
			slices.SortStableFunc(idx, func(a, b int) int { return cmpFloat(contrib[a], contrib[b]) })
			for _, j := range idx[:min(2, len(idx))] {
				if contrib[j] < 0 && m.material(j) {
					sc.Reasons = append(sc.Reasons, fmt.Sprintf("%s %s lowers the score by %.2f", m.Signals[j], num(raw[j]), -contrib[j]))
				}
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
