package search

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/baton-ml/baton/internal/fault"
)

// The paths an answer can take.
const (
	PathRerank = "rerank" // BM25 candidates ordered by the learned model
	PathBM25   = "bm25"   // BM25 order: no model, or the model failed
)

// Hit is one title of an answer.
type Hit struct {
	Title string  `json:"title"`
	Name  string  `json:"name"`
	Rank  int     `json:"rank"`
	BM25  float64 `json:"bm25"`
	// BM25Rank is the title's place in BM25 order, from 1.
	BM25Rank int `json:"bm25_rank"`
	// Score is the re-ranker's click probability; nil on the BM25 path.
	Score *float64 `json:"score"`
	Path  string   `json:"path"`
	Why   string   `json:"why"`
}

// Searcher answers queries: BM25 retrieval of Candidates titles, then the
// model's order when there is a model and it scores them, else BM25's.
// It is safe for concurrent use (the index and the model are only read).
type Searcher struct {
	ix         *Index
	model      *Model
	candidates int
}

// NewSearcher serves ix, re-ranked by model (nil: BM25 only). candidates
// is how many titles retrieval hands the re-ranker (DefaultCandidates if
// 0).
func NewSearcher(ix *Index, model *Model, candidates int) (*Searcher, error) {
	if candidates == 0 {
		candidates = DefaultCandidates
	}
	if candidates < 1 {
		return nil, fault.Invalidf("candidates", "%d: must be at least 1", candidates)
	}
	return &Searcher{ix: ix, model: model, candidates: candidates}, nil
}

// Search answers query for member (may be "" or unknown: no affinity)
// with at most n hits. Every hit says which path served it and why it
// is where it is. An empty query or n < 1 is invalid input.
func (s *Searcher) Search(ctx context.Context, query, member string, n int) ([]Hit, error) {
	if n < 1 {
		return nil, fault.Invalidf("n", "%d: must be at least 1", n)
	}
	cands, err := s.ix.Retrieve(ctx, query, max(n, s.candidates))
	if err != nil {
		return nil, err
	}
	fallback := func(why string) []Hit {
		out := make([]Hit, 0, min(n, len(cands)))
		for i, c := range cands[:min(n, len(cands))] {
			out = append(out, s.hit(c, i+1, i+1, nil, PathBM25, why))
		}
		return out
	}
	if s.model == nil {
		return fallback("BM25 order: no re-rank model"), nil
	}
	if err := s.model.Check(); err != nil {
		return fallback(fmt.Sprintf("BM25 order: the re-rank model is unusable (%v)", err)), nil
	}
	rs, err := s.model.rank(s.ix, member, cands)
	if err != nil {
		return fallback(fmt.Sprintf("BM25 order: the re-rank model failed (%v)", err)), nil
	}
	_, known := s.model.Profiles[member]
	out := make([]Hit, min(n, len(rs)))
	scores := make([]float64, len(out)) // one allocation for every hit's score
	var buf []byte
	for i, r := range rs[:len(out)] {
		scores[i] = r.prob
		buf = s.model.appendExplain(buf[:0], known, r.x)
		out[i] = Hit{Title: r.ID, Rank: i + 1, BM25: r.Scored.Score, BM25Rank: r.bm + 1, Score: &scores[i], Path: PathRerank, Why: string(buf)}
		if r.title != nil {
			out[i].Name = r.title.Name
		}
	}
	return out, nil
}

func (s *Searcher) hit(c Scored, rank, bmRank int, score *float64, path, why string) Hit {
	h := Hit{Title: c.ID, Rank: rank, BM25: c.Score, BM25Rank: bmRank, Score: score, Path: path, Why: why}
	if t := s.ix.Title(c.ID); t != nil {
		h.Name = t.Name
	}
	return h
}

// appendExplain appends why a title is where it is: each feature's push
// on the score (weight × standardized value), the strongest first, with
// the raw value x it came from. known says whether the member has a
// genre profile. (It writes what fmt would with "%s %+.2f (%s)" and the
// raw values' verbs, without fmt: twenty of these were a tenth of a
// query.)
func (m *Model) appendExplain(b []byte, known bool, x [3]float64) []byte {
	var contrib [3]float64
	order := [3]int{0, 1, 2}
	for j := range x {
		contrib[j] = m.Weights[j] * (x[j] - m.Mean[j]) / m.Std[j]
	}
	slices.SortStableFunc(order[:], func(a, b int) int { return cmp.Compare(math.Abs(contrib[b]), math.Abs(contrib[a])) })
	b = append(b, "re-ranked: "...)
	for i, j := range order {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, featureNames[j]...)
		b = append(b, ' ')
		b = appendFixed(b, contrib[j], 2, true)
		b = append(b, " ("...)
		switch featureNames[j] {
		case FeatureRetrieval:
			b = append(b, "text match "...)
			b = appendFixed(b, x[j], 2, false)
			b = append(b, " of the best"...)
		case FeaturePopularity:
			b = appendFixed(b, math.Expm1(x[j]), 0, false)
			b = append(b, " plays"...)
		case FeatureAffinity:
			if known {
				b = appendFixed(b, 100*x[j], 0, false)
				b = append(b, "% of the member's plays in its genres"...)
			} else {
				b = append(b, "member unknown: no affinity"...)
			}
		}
		b = append(b, ')')
	}
	return b
}

// appendFixed is fmt's %.Nf (%+.Nf with plus) of v.
func appendFixed(b []byte, v float64, prec int, plus bool) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		// fmt's own words for these.
		if plus {
			return fmt.Appendf(b, "%+.*f", prec, v)
		}
		return fmt.Appendf(b, "%.*f", prec, v)
	}
	if plus && !math.Signbit(v) {
		b = append(b, '+')
	}
	return strconv.AppendFloat(b, v, 'f', prec, 64)
}
