package search

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// refSearch is Search as it was (a map of BM25 places, the features and
// fmt's explanation worked out again for each hit): the reference the
// answers must equal.
func refSearch(s *Searcher, query, member string, n int) ([]Hit, error) {
	cands, err := s.ix.Retrieve(context.Background(), query, max(n, s.candidates))
	if err != nil {
		return nil, err
	}
	bmRank := make(map[string]int, len(cands))
	for i, c := range cands {
		bmRank[c.ID] = i + 1
	}
	best := 0.0
	if len(cands) > 0 {
		best = cands[0].Score
	}
	type scored struct {
		s     Scored
		score float64
	}
	tmp := make([]scored, len(cands))
	var x [3]float64
	for i, c := range cands {
		s.model.features(s.ix, member, c, best, x[:])
		tmp[i] = scored{c, sigmoid(s.model.logit(x[:]))}
	}
	sort.SliceStable(tmp, func(a, b int) bool { return tmp[a].score > tmp[b].score })
	_, known := s.model.Profiles[member]
	var out []Hit
	for i, t := range tmp[:min(n, len(tmp))] {
		sc := t.score
		out = append(out, s.hit(t.s, i+1, bmRank[t.s.ID], &sc, PathRerank, refExplain(s.model, s.ix, member, known, t.s, best)))
	}
	return out, nil
}

func refExplain(m *Model, ix *Index, member string, known bool, c Scored, best float64) string {
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

// Search answers what it answered before it kept each candidate's
// features and BM25 place, hit for hit: known and unknown members, many
// queries, several depths.
func TestSearchMatchesReference(t *testing.T) {
	ctx := context.Background()
	s, ix := synthIndex(t, SynthOptions{Titles: 2000, Members: 100, Sessions: 1500, Seed: 6})
	m, err := Train(ctx, ix, s.Interactions, s.Clicks, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cands := range []int{0, 7, 300} {
		sr, err := NewSearcher(ix, m, cands)
		if err != nil {
			t.Fatal(err)
		}
		for i, q := range s.Words[:60] {
			member := s.Interactions[(i*37)%len(s.Interactions)].Member
			if i%4 == 0 {
				member = "nobody"
			}
			for _, n := range []int{1, 20, 100} {
				got, err := sr.Search(ctx, q, member, n)
				if err != nil {
					t.Fatal(err)
				}
				want, err := refSearch(sr, q, member, n)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("query %q member %s n %d candidates %d:\n got %+v\nwant %+v", q, member, n, cands, got, want)
				}
			}
		}
	}
}

// appendFixed writes what fmt's %.Nf and %+.Nf write.
func TestAppendFixedMatchesFmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	vals := []float64{0, math.Copysign(0, -1), 0.005, -0.005, 0.004999, 0.5, 1.5, 2.5, -2.5, 1e21, -1e-9, 123.455, math.NaN(), math.Inf(1), math.Inf(-1)}
	for range 5000 {
		vals = append(vals, (rng.Float64()-0.5)*math.Pow(10, float64(rng.IntN(16)-6)))
	}
	for _, v := range vals {
		for _, prec := range []int{0, 2} {
			if got, want := string(appendFixed(nil, v, prec, false)), fmt.Sprintf("%.*f", prec, v); got != want {
				t.Fatalf("%%.%df of %v: %q, fmt %q", prec, v, got, want)
			}
			if got, want := string(appendFixed(nil, v, prec, true)), fmt.Sprintf("%+.*f", prec, v); got != want {
				t.Fatalf("%%+.%df of %v: %q, fmt %q", prec, v, got, want)
			}
		}
	}
}
