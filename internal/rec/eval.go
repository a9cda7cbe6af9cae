package rec

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// Metrics are a model's quality on held-out interactions, at cut-off K.
type Metrics struct {
	K       int `json:"k"`
	Members int `json:"members"` // members with a held-out title, the ones averaged over
	// Recall is hits / held-out titles, NDCG binary-relevance NDCG, MAP
	// the mean of precision at each hit over min(K, held-out titles).
	Recall float64 `json:"recall"`
	NDCG   float64 `json:"ndcg"`
	MAP    float64 `json:"map"`
	// NDCGComplete is NDCG with the held-out completed titles as the
	// relevant ones (NaN-free: 0 when nobody completed anything).
	NDCGComplete float64 `json:"ndcg_complete"`
	// Coverage is the share of the catalog recommended to anyone.
	Coverage float64 `json:"coverage"`
	// Diversity is intra-list diversity: 1 − the mean pairwise Jaccard
	// similarity of the titles' genres, averaged over lists.
	Diversity float64 `json:"diversity"`
	// Novelty is the mean −log2 of a recommended title's share of the
	// training plays, smoothed: (plays + 1) / (all plays + titles).
	Novelty float64 `json:"novelty"`
	// NewCreatorShare is the share of recommended slots given to titles
	// of new creators.
	NewCreatorShare float64            `json:"new_creator_share"`
	MarketRecall    map[string]float64 `json:"market_recall"`
}

// Flat names every metric as the registry stores it: recall@10,
// ndcg@10, ..., recall@10/US per market.
func (m Metrics) Flat() map[string]float64 {
	k := "@" + strconv.Itoa(m.K)
	out := map[string]float64{
		"recall" + k: m.Recall, "ndcg" + k: m.NDCG, "map" + k: m.MAP, "ndcg_complete" + k: m.NDCGComplete,
		"coverage" + k: m.Coverage, "diversity" + k: m.Diversity, "novelty" + k: m.Novelty,
		"new_creator_share" + k: m.NewCreatorShare, "eval_members": float64(m.Members),
	}
	for mk, v := range m.MarketRecall {
		out["recall"+k+"/"+mk] = v
	}
	return out
}

// FlatNames is Flat's names in order.
func (m Metrics) FlatNames() []string {
	f := m.Flat()
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type memberEval struct {
	ok                           bool
	market                       string
	recall, ndcg, mapk, ndcgDone float64
	hasDone                      bool
	div                          float64
	hasDiv                       bool
	items                        []int32
}

// Evaluate scores m on test's interactions: for every member with a
// title in test they had not played in m's training data, the top K
// (seen titles excluded, in the member's market) against those titles.
// test must use the catalog m was trained with (title ids are matched).
func Evaluate(ctx context.Context, m *Recommender, test *Dataset, k int) (Metrics, error) {
	if k < 1 {
		return Metrics{}, fmt.Errorf("k %d: must be at least 1", k)
	}
	b := m.b
	rel := buildHistory(&test.Inter, len(test.Members))
	// Test title index → model title index.
	tmap := make([]int32, len(test.Titles))
	for i, t := range test.Titles {
		tmap[i] = -1
		if j, ok := b.titleIdx[t.ID]; ok {
			tmap[i] = j
		}
	}
	res := make([]memberEval, len(test.Members))
	var next atomic.Int64
	var wg sync.WaitGroup
	var p panics
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.catch()
			for ctx.Err() == nil && !p.failed() {
				i := int(next.Add(1)) - 1
				if i >= len(test.Members) {
					return
				}
				res[i] = evalMember(m, test, &rel, tmap, i, k)
			}
		}()
	}
	wg.Wait()
	if err := p.err(); err != nil {
		return Metrics{}, err
	}
	if err := ctx.Err(); err != nil {
		return Metrics{}, err
	}
	out := Metrics{K: k, MarketRecall: map[string]float64{}}
	marketN := map[string]int{}
	recommended := make([]bool, len(b.Titles))
	var nDone, nDiv, slots, newSlots int
	var novelty float64
	var total float64
	for _, c := range b.Count {
		total += float64(c)
	}
	for _, r := range res {
		if !r.ok {
			continue
		}
		out.Members++
		out.Recall += r.recall
		out.NDCG += r.ndcg
		out.MAP += r.mapk
		if r.hasDone {
			nDone++
			out.NDCGComplete += r.ndcgDone
		}
		if r.hasDiv {
			nDiv++
			out.Diversity += r.div
		}
		if r.market != "" {
			out.MarketRecall[r.market] += r.recall
			marketN[r.market]++
		}
		for _, t := range r.items {
			recommended[t] = true
			slots++
			if b.Titles[t].NewCreator {
				newSlots++
			}
			novelty += -math.Log2((float64(b.Count[t]) + 1) / (total + float64(len(b.Titles))))
		}
	}
	div := func(s float64, n int) float64 {
		if n == 0 {
			return 0
		}
		return s / float64(n)
	}
	out.Recall = div(out.Recall, out.Members)
	out.NDCG = div(out.NDCG, out.Members)
	out.MAP = div(out.MAP, out.Members)
	out.NDCGComplete = div(out.NDCGComplete, nDone)
	out.Diversity = div(out.Diversity, nDiv)
	out.Novelty = div(novelty, slots)
	out.NewCreatorShare = div(float64(newSlots), slots)
	var covered int
	for _, c := range recommended {
		if c {
			covered++
		}
	}
	out.Coverage = div(float64(covered), len(b.Titles))
	for mk, n := range marketN {
		out.MarketRecall[mk] /= float64(n)
	}
	return out, nil
}

func evalMember(m *Recommender, test *Dataset, rel *history, tmap []int32, i, k int) memberEval {
	b := m.b
	id := test.Members[i].ID
	u := b.member(id)
	var relevant, done []int32
	for n := rel.Ptr[i]; n < rel.Ptr[i+1]; n++ {
		t := tmap[rel.Title[n]]
		if t < 0 || (u >= 0 && slices.Contains(b.Hist.row(u), t)) {
			continue
		}
		relevant = append(relevant, t)
		if rel.Completed[n] {
			done = append(done, t)
		}
	}
	if len(relevant) == 0 {
		return memberEval{}
	}
	market := test.Members[i].Market
	recs := m.Recommend(id, Options{N: k, Market: market})
	items := make([]int32, len(recs))
	for j, it := range recs {
		items[j] = b.titleIdx[it.Title]
	}
	e := memberEval{ok: true, market: market, items: items}
	e.recall, e.ndcg, e.mapk = rankMetrics(items, relevant, k)
	if len(done) > 0 {
		e.hasDone = true
		_, e.ndcgDone, _ = rankMetrics(items, done, k)
	}
	if len(items) >= 2 {
		e.hasDiv = true
		e.div = listDiversity(b.Titles, items)
	}
	return e
}

// rankMetrics are recall@k, NDCG@k and AP@k of a ranked list against a
// set of relevant items.
func rankMetrics(items, relevant []int32, k int) (recall, ndcg, ap float64) {
	hits := 0
	var dcg, prec float64
	for r, t := range items {
		if r >= k {
			break
		}
		if slices.Contains(relevant, t) {
			hits++
			dcg += 1 / math.Log2(float64(r)+2)
			prec += float64(hits) / float64(r+1)
		}
	}
	var idcg float64
	for r := range min(k, len(relevant)) {
		idcg += 1 / math.Log2(float64(r)+2)
	}
	n := float64(min(k, len(relevant)))
	return float64(hits) / float64(len(relevant)), dcg / idcg, prec / n
}

// listDiversity is 1 − the mean Jaccard similarity of the genre sets of
// every pair in the list (two titles without genres count as alike).
func listDiversity(titles []Title, items []int32) float64 {
	var sum float64
	pairs := 0
	for a := range items {
		for c := a + 1; c < len(items); c++ {
			sum += jaccard(titles[items[a]].Genres, titles[items[c]].Genres)
			pairs++
		}
	}
	return 1 - sum/float64(pairs)
}

func jaccard(a, b []string) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter := 0
	for _, x := range a {
		if slices.Contains(b, x) {
			inter++
		}
	}
	union := len(a) + len(b) - inter
	return float64(inter) / float64(union)
}
