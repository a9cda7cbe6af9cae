package search

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/baton-ml/baton/internal/fault"
)

// The re-ranker's features, in this order.
const (
	FeatureRetrieval  = "retrieval"  // BM25 score / the best score of the query's candidates
	FeaturePopularity = "popularity" // log(1 + the title's plays)
	FeatureAffinity   = "affinity"   // the member's share of plays in the title's genres
)

var featureNames = []string{FeatureRetrieval, FeaturePopularity, FeatureAffinity}

// ModelFormat is the version of the model file's layout.
const ModelFormat = 1

// Model is the learned re-ranker: a logistic regression on standardized
// features, with the feature tables it was trained with (plays per title
// and members' genre profiles), so that a model file answers on its own.
// A team with a feature store would look the tables up there instead.
type Model struct {
	Format   int       `json:"format"`
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	Weights  []float64 `json:"weights"`
	Bias     float64   `json:"bias"`
	// Popularity is plays per title; Profiles member → genre → share of
	// the member's plays (the shares of a member sum to 1).
	Popularity map[string]float64            `json:"popularity"`
	Profiles   map[string]map[string]float64 `json:"profiles"`
	Metrics    Metrics                       `json:"metrics"`
}

// Metrics are measured at training on the held-out sessions (one in five
// (member, query) pairs, chosen by a hash so that a re-run splits alike):
// the rank of the clicked titles among the query's retrieved candidates,
// by BM25 alone and re-ranked.
type Metrics struct {
	TrainRows      int     `json:"train_rows"`
	TrainSessions  int     `json:"train_sessions"`
	TestSessions   int     `json:"test_sessions"`
	Candidates     int     `json:"candidates"`
	MRRBM25        float64 `json:"mrr_bm25"`
	MRRRerank      float64 `json:"mrr_rerank"`
	NDCG10BM25     float64 `json:"ndcg10_bm25"`
	NDCG10Rerank   float64 `json:"ndcg10_rerank"`
	UnknownTitles  int     `json:"unknown_titles"`
	Iterations     int     `json:"iterations"`
	TrainLogLoss   float64 `json:"train_log_loss"`
	TrainBaseRate  float64 `json:"train_base_rate"`
	UnretrievedHit int     `json:"unretrieved_clicks"`
}

// TrainOptions tune Train.
type TrainOptions struct {
	// Candidates retrieved per query; DefaultCandidates if 0.
	Candidates int
	// L2 penalty on the weights (not the bias); 1 if 0.
	L2 float64
}

// Tables are the feature tables from an interactions file joined with the
// catalog.
type Tables struct {
	Popularity map[string]float64
	Profiles   map[string]map[string]float64
	// Unknown counts interactions with a title not in the catalog (left out).
	Unknown int
}

// BuildTables counts plays per title and each member's genre shares.
func BuildTables(ix *Index, its []Interaction) Tables {
	t := Tables{Popularity: map[string]float64{}, Profiles: map[string]map[string]float64{}}
	// A member's shares are divided by the count of their plays of titles
	// with a genre, an integer: summing the shares over the map would add
	// them in Go's random order, and two trainings on the same clicks
	// would write models a rounding apart (which can swap two titles).
	plays := map[string]int{}
	for _, it := range its {
		title := ix.Title(it.Title)
		if title == nil {
			t.Unknown++
			continue
		}
		t.Popularity[it.Title]++
		p := t.Profiles[it.Member]
		if p == nil {
			p = map[string]float64{}
			t.Profiles[it.Member] = p
		}
		for _, g := range title.Genres {
			p[g] += 1 / float64(len(title.Genres))
		}
		if len(title.Genres) > 0 {
			plays[it.Member]++
		}
	}
	for m, p := range t.Profiles {
		for g := range p {
			p[g] /= float64(plays[m])
		}
	}
	return t
}

// features writes the raw features of title among cands (best score
// best) for member into x.
func (m *Model) features(ix *Index, member string, s Scored, best float64, x []float64) {
	m.featuresOf(s, ix.Title(s.ID), m.Profiles[member], best, x)
}

// featuresOf is features with the title's catalog entry and the member's
// genre profile looked up already (either may be nil).
func (m *Model) featuresOf(s Scored, t *Title, profile map[string]float64, best float64, x []float64) {
	x[0] = 0
	if best > 0 {
		x[0] = s.Score / best
	}
	x[1] = math.Log1p(m.Popularity[s.ID])
	x[2] = 0
	if profile != nil && t != nil {
		for _, g := range t.Genres {
			x[2] += profile[g]
		}
	}
}

// logit is the model's linear score of raw features x.
func (m *Model) logit(x []float64) float64 {
	z := m.Bias
	for j, v := range x {
		z += m.Weights[j] * (v - m.Mean[j]) / m.Std[j]
	}
	return z
}

// Check says whether a model can score: the features it knows, one
// finite weight, mean and positive deviation each.
func (m *Model) Check() error {
	if m.Format != ModelFormat {
		return fault.Invalidf("format", "model format %d; this baton reads %d", m.Format, ModelFormat)
	}
	if !slices.Equal(m.Features, featureNames) {
		return fault.Invalidf("features", "%q; this baton computes %q", m.Features, featureNames)
	}
	n := len(featureNames)
	if len(m.Weights) != n || len(m.Mean) != n || len(m.Std) != n {
		return fault.Invalidf("weights", "%d weights, %d means, %d deviations for %d features", len(m.Weights), len(m.Mean), len(m.Std), n)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for j := range n {
		if !finite(m.Weights[j]) || !finite(m.Mean[j]) || !finite(m.Std[j]) || !(m.Std[j] > 0) {
			return fault.Invalidf("weights", "feature %s: weight %g, mean %g, deviation %g", m.Features[j], m.Weights[j], m.Mean[j], m.Std[j])
		}
	}
	if !finite(m.Bias) {
		return fault.Invalidf("bias", "%g is not a number", m.Bias)
	}
	return nil
}

// ReadModel decodes and checks a model file.
func ReadModel(r io.Reader, name string) (*Model, error) {
	var m Model
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
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

type session struct {
	member, query string
	rows          []int // indices into the click log
}

// Train fits the re-ranker on the click log: each row is one example,
// its features computed against the query's retrieved candidates (a
// title not retrieved has retrieval 0), clicked or not the label. It is
// evaluated on held-out sessions (see Metrics). An empty log, or one
// without a click or without a non-click, is an error.
func Train(ctx context.Context, ix *Index, its []Interaction, clicks []Click, opts TrainOptions) (*Model, error) {
	k := opts.Candidates
	if k == 0 {
		k = DefaultCandidates
	}
	if k < 1 {
		return nil, fault.Invalidf("candidates", "%d: must be at least 1", k)
	}
	l2 := opts.L2
	if l2 == 0 {
		l2 = 1
	}
	if !(l2 > 0) || math.IsInf(l2, 0) {
		return nil, fault.Invalidf("l2", "%g: must be a positive number", l2)
	}
	if len(clicks) == 0 {
		return nil, fault.Invalidf("clicks", "an empty click log")
	}
	tabs := BuildTables(ix, its)
	m := &Model{Format: ModelFormat, Features: slices.Clone(featureNames), Popularity: tabs.Popularity, Profiles: tabs.Profiles}
	m.Metrics.UnknownTitles = tabs.Unknown
	m.Metrics.Candidates = k

	// Sessions in first-seen order, split by a hash of (member, query).
	index := map[[2]string]int{}
	var sessions []session
	for i, c := range clicks {
		key := [2]string{c.Member, c.Query}
		s, ok := index[key]
		if !ok {
			s = len(sessions)
			index[key] = s
			sessions = append(sessions, session{member: c.Member, query: c.Query})
		}
		sessions[s].rows = append(sessions[s].rows, i)
	}
	retrieved := map[string][]Scored{}
	retrieve := func(q string) ([]Scored, error) {
		if r, ok := retrieved[q]; ok {
			return r, nil
		}
		r, err := ix.Retrieve(ctx, q, k)
		if err != nil {
			return nil, err
		}
		retrieved[q] = r
		return r, nil
	}

	nf := len(featureNames)
	var xs []float64
	var ys []float64
	var test []session
	for _, s := range sessions {
		if heldOut(s.member, s.query) {
			test = append(test, s)
			continue
		}
		m.Metrics.TrainSessions++
		cands, err := retrieve(s.query)
		if err != nil {
			return nil, err
		}
		byID := make(map[string]Scored, len(cands))
		for _, c := range cands {
			byID[c.ID] = c
		}
		best := 0.0
		if len(cands) > 0 {
			best = cands[0].Score
		}
		x := make([]float64, nf)
		for _, r := range s.rows {
			c := clicks[r]
			sc, ok := byID[c.Title]
			if !ok {
				sc = Scored{ID: c.Title}
			}
			m.features(ix, s.member, sc, best, x)
			xs = append(xs, x...)
			y := 0.0
			if c.Clicked {
				y = 1
			}
			ys = append(ys, y)
		}
	}
	n := len(ys)
	m.Metrics.TrainRows = n
	var pos float64
	for _, y := range ys {
		pos += y
	}
	if n == 0 || pos == 0 || pos == float64(n) {
		return nil, fault.Invalidf("clicks", "the training sessions have %d rows of which %g clicked: a model needs clicks and non-clicks", n, pos)
	}
	m.Metrics.TrainBaseRate = pos / float64(n)

	// Standardize: the L2 penalty then weighs every feature alike, and
	// the weights compare.
	m.Mean, m.Std = make([]float64, nf), make([]float64, nf)
	for i := range n {
		for j := range nf {
			m.Mean[j] += xs[i*nf+j]
		}
	}
	for j := range nf {
		m.Mean[j] /= float64(n)
	}
	for i := range n {
		for j := range nf {
			d := xs[i*nf+j] - m.Mean[j]
			m.Std[j] += d * d
		}
	}
	for j := range nf {
		m.Std[j] = math.Sqrt(m.Std[j] / float64(n))
		if !(m.Std[j] > 1e-12) {
			m.Std[j] = 1 // a constant feature: its weight stays at 0 under L2
		}
	}
	z := make([]float64, n*nf)
	for i := range n {
		for j := range nf {
			z[i*nf+j] = (xs[i*nf+j] - m.Mean[j]) / m.Std[j]
		}
	}
	w, iters, loss, err := fitLogistic(ctx, z, ys, nf, l2)
	if err != nil {
		return nil, err
	}
	m.Weights, m.Bias = w[:nf], w[nf]
	m.Metrics.Iterations, m.Metrics.TrainLogLoss = iters, loss
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("the fit diverged: %w", err)
	}
	if err := m.evaluate(ctx, ix, clicks, test, retrieve); err != nil {
		return nil, err
	}
	return m, nil
}

// heldOut puts one (member, query) session in five in the test split.
func heldOut(member, query string) bool {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(query))
	return h.Sum64()%5 == 0
}

// fitLogistic fits weights and a bias (last) by Newton's method (IRLS) on
// the penalized log-likelihood: with four parameters each step is a 4×4
// solve, and it converges in a handful of steps to the exact optimum.
func fitLogistic(ctx context.Context, z, y []float64, nf int, l2 float64) ([]float64, int, float64, error) {
	n := len(y)
	p := nf + 1
	w := make([]float64, p)
	grad := make([]float64, p)
	hess := make([]float64, p*p)
	row := make([]float64, p)
	var loss float64
	iters := 0
	for iters = 1; iters <= 50; iters++ {
		if err := ctx.Err(); err != nil {
			return nil, 0, 0, err
		}
		clear(grad)
		clear(hess)
		loss = 0
		for i := range n {
			copy(row, z[i*nf:(i+1)*nf])
			row[nf] = 1
			var s float64
			for j := range p {
				s += w[j] * row[j]
			}
			pr := sigmoid(s)
			loss += logLoss(y[i], s)
			g := pr - y[i]
			h := pr * (1 - pr)
			for a := range p {
				grad[a] += g * row[a]
				for b := range p {
					hess[a*p+b] += h * row[a] * row[b]
				}
			}
		}
		for j := range nf {
			grad[j] += l2 * w[j]
			hess[j*p+j] += l2
		}
		var step mat.VecDense
		if err := step.SolveVec(mat.NewDense(p, p, hess), mat.NewVecDense(p, grad)); err != nil {
			return nil, 0, 0, fmt.Errorf("fit: %w", err)
		}
		var change float64
		for j := range p {
			d := step.AtVec(j)
			w[j] -= d
			change = math.Max(change, math.Abs(d))
		}
		if change < 1e-9 {
			break
		}
	}
	return w, min(iters, 50), loss / float64(n), nil
}

func sigmoid(s float64) float64 { return 1 / (1 + math.Exp(-s)) }

// logLoss is −log p(y | s) computed without overflow.
func logLoss(y, s float64) float64 {
	// log(1+e^s) − y s
	var l float64
	if s > 0 {
		l = s + math.Log1p(math.Exp(-s))
	} else {
		l = math.Log1p(math.Exp(s))
	}
	return l - y*s
}

// rerank orders cands by the model for member, ties in BM25 order; it
// returns the scores in the new order, or an error when one is not a
// number.
func (m *Model) rerank(ix *Index, member string, cands []Scored) ([]Scored, []float64, error) {
	rs, err := m.rank(ix, member, cands)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Scored, len(rs))
	scores := make([]float64, len(rs))
	for i, r := range rs {
		out[i], scores[i] = r.Scored, r.prob
	}
	return out, scores, nil
}

// ranked is a candidate as the model ranked it: its place in BM25 order,
// its catalog entry (nil if the catalog lacks it), its raw features and
// its score.
type ranked struct {
	Scored
	bm    int
	title *Title
	x     [3]float64
	prob  float64 // the model's click probability
}

// rank is rerank keeping what an answer says of each title, so that
// neither its BM25 place nor its features are looked up again.
func (m *Model) rank(ix *Index, member string, cands []Scored) ([]ranked, error) {
	best := 0.0
	if len(cands) > 0 {
		best = cands[0].Score
	}
	profile := m.Profiles[member]
	rs := make([]ranked, len(cands))
	for i, c := range cands {
		r := &rs[i]
		r.Scored, r.bm, r.title = c, i, ix.Title(c.ID)
		m.featuresOf(c, r.title, profile, best, r.x[:])
		r.prob = sigmoid(m.logit(r.x[:]))
		if math.IsNaN(r.prob) {
			return nil, fmt.Errorf("title %q scores NaN", c.ID)
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return cmp.Compare(b.prob, a.prob) })
	return rs, nil
}

func (m *Model) evaluate(ctx context.Context, ix *Index, clicks []Click, test []session, retrieve func(string) ([]Scored, error)) error {
	var mrrB, mrrR, ndB, ndR float64
	n := 0
	for _, s := range test {
		clicked := map[string]bool{}
		for _, r := range s.rows {
			if clicks[r].Clicked {
				clicked[clicks[r].Title] = true
			}
		}
		if len(clicked) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cands, err := retrieve(s.query)
		if err != nil {
			return err
		}
		re, _, err := m.rerank(ix, s.member, cands)
		if err != nil {
			return err
		}
		found := false
		for _, c := range cands {
			found = found || clicked[c.ID]
		}
		if !found {
			m.Metrics.UnretrievedHit++
		}
		n++
		mrrB += reciprocalRank(cands, clicked)
		mrrR += reciprocalRank(re, clicked)
		ndB += ndcg(cands, clicked, 10)
		ndR += ndcg(re, clicked, 10)
	}
	m.Metrics.TestSessions = n
	if n > 0 {
		m.Metrics.MRRBM25, m.Metrics.MRRRerank = mrrB/float64(n), mrrR/float64(n)
		m.Metrics.NDCG10BM25, m.Metrics.NDCG10Rerank = ndB/float64(n), ndR/float64(n)
	}
	return nil
}

// reciprocalRank is 1/rank of the first relevant title, 0 when none is
// in the list.
func reciprocalRank(list []Scored, rel map[string]bool) float64 {
	for i, s := range list {
		if rel[s.ID] {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// ndcg is NDCG@k with binary relevance.
func ndcg(list []Scored, rel map[string]bool, k int) float64 {
	var dcg, idcg float64
	for i := 0; i < k && i < len(list); i++ {
		if rel[list[i].ID] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	for i := 0; i < k && i < len(rel); i++ {
		idcg += 1 / math.Log2(float64(i+2))
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}
