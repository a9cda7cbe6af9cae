package search

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

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
	bmRank := make(map[string]int, len(cands))
	for i, c := range cands {
		bmRank[c.ID] = i + 1
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
	order, scores, err := s.model.rerank(s.ix, member, cands)
	if err != nil {
		return fallback(fmt.Sprintf("BM25 order: the re-rank model failed (%v)", err)), nil
	}
	best := 0.0
	if len(cands) > 0 {
		best = cands[0].Score
	}
	_, known := s.model.Profiles[member]
	out := make([]Hit, 0, min(n, len(order)))
	for i, c := range order[:min(n, len(order))] {
		sc := scores[i]
		out = append(out, s.hit(c, i+1, bmRank[c.ID], &sc, PathRerank, s.model.explain(s.ix, member, known, c, best)))
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

// explain names each feature's push on the score (weight × standardized
// value), the strongest first, with the raw value it came from.
func (m *Model) explain(ix *Index, member string, known bool, c Scored, best float64) string {
	var x [3]float64
	m.features(ix, member, c, best, x[:])
	type part struct {
		text    string
		contrib float64
	}
	parts := make([]part, len(x))
	for j := range x {
		contrib := m.Weights[j] * (x[j] - m.Mean[j]) / m.Std[j]
		var raw string
		switch featureNames[j] {
		case FeatureRetrieval:
			raw = fmt.Sprintf("text match %.2f of the best", x[j])
		case FeaturePopularity:
			raw = fmt.Sprintf("%.0f plays", math.Expm1(x[j]))
		case FeatureAffinity:
			if known {
				raw = fmt.Sprintf("%.0f%% of the member's plays in its genres", 100*x[j])
			} else {
				raw = "member unknown: no affinity"
			}
		}
		parts[j] = part{fmt.Sprintf("%s %+.2f (%s)", featureNames[j], contrib, raw), contrib}
	}
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(math.Abs(b.contrib), math.Abs(a.contrib)) })
	texts := make([]string, len(parts))
	for i, p := range parts {
		texts[i] = p.text
	}
	return "re-ranked: " + strings.Join(texts, ", ")
}
