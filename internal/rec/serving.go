package rec

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"sync"
)

// What serving builds a page of rows from: every title's score at once
// (one pass of the model per request, whatever the rows), the titles a
// member has seen, and titles like a given one.

// ScoreAll fills dst, one score per title in catalog order (Titles), with
// member's scores; an unknown member gets the popularity of market ("":
// across all markets). dst must hold len(Titles()) values.
func (r *Recommender) ScoreAll(member, market string, dst []float32) {
	u := r.b.member(member)
	r.scoresFor(u, r.b.marketOf(u, market), dst[:len(r.b.Titles)])
}

// TitleIndex is a title's position in catalog order.
func (r *Recommender) TitleIndex(id string) (int, bool) {
	i, ok := r.b.titleIdx[id]
	return int(i), ok
}

// Seen is the catalog indexes of the titles member played in the training
// data (nil for an unknown member). The slice is the model's: do not change it.
func (r *Recommender) Seen(member string) []int32 {
	u := r.b.member(member)
	if u < 0 {
		return nil
	}
	return r.b.Hist.row(u)
}

// MostPlayed is the title member played most (by summed weight; ties to
// the lower catalog index), the anchor of "Because You Watched" when no
// fresher signal says what the member watched last.
func (r *Recommender) MostPlayed(member string) (string, bool) {
	u := r.b.member(member)
	if u < 0 {
		return "", false
	}
	h := &r.b.Hist
	best, bw := int32(-1), float32(0)
	for i := h.Ptr[u]; i < h.Ptr[u+1]; i++ {
		if h.Weight[i] > bw {
			best, bw = h.Title[i], h.Weight[i]
		}
	}
	if best < 0 {
		return "", false
	}
	return r.b.Titles[best].ID, true
}

// Similarity answers "titles like this one" for any kind of model: item-to-item
// cosine over who played what in the model's training data,
// cos(i, j) = |P(i) ∩ P(j)| / sqrt(|P(i)| · |P(j)|), P(i) the members who
// played i. It is model-agnostic on purpose: "Because You Watched X" must
// explain itself by co-viewing, whatever model ranks the rest of the page.
// Neighbours are computed on first use per title and kept (at most one list
// per title). Safe for concurrent use.
type Similarity struct {
	r    *Recommender
	once sync.Once
	// players[t] are the members who played t (the history transposed).
	ptr     []int64
	players []int32

	mu    sync.RWMutex
	cache map[int32][]int32
	// keep is how many neighbours a cached list holds.
	keep int
}

// NewSimilarity makes the index for r; keep is how many neighbours of a
// title are kept (at least 1; 100 when 0).
func NewSimilarity(r *Recommender, keep int) *Similarity {
	if keep <= 0 {
		keep = 100
	}
	return &Similarity{r: r, keep: keep, cache: map[int32][]int32{}}
}

func (s *Similarity) build() {
	h := &s.r.b.Hist
	nt := len(s.r.b.Titles)
	s.ptr = make([]int64, nt+1)
	for _, t := range h.Title {
		s.ptr[t+1]++
	}
	for i := 1; i <= nt; i++ {
		s.ptr[i] += s.ptr[i-1]
	}
	s.players = make([]int32, len(h.Title))
	pos := slices.Clone(s.ptr[:nt])
	for u := 0; u+1 < len(h.Ptr); u++ {
		for _, t := range h.row(u) {
			s.players[pos[t]] = int32(u)
			pos[t]++
		}
	}
}

// Neighbours is the catalog indexes of the titles most like title t, best
// first (t itself excluded); empty for a title nobody played.
func (s *Similarity) Neighbours(t int) []int32 {
	s.once.Do(s.build)
	s.mu.RLock()
	nb, ok := s.cache[int32(t)]
	s.mu.RUnlock()
	if ok {
		return nb
	}
	nb = s.compute(int32(t))
	s.mu.Lock()
	s.cache[int32(t)] = nb
	s.mu.Unlock()
	return nb
}

func (s *Similarity) compute(t int32) []int32 {
	h := &s.r.b.Hist
	co := map[int32]int32{}
	for _, u := range s.players[s.ptr[t]:s.ptr[t+1]] {
		for _, j := range h.row(int(u)) {
			if j != t {
				co[j]++
			}
		}
	}
	type scored struct {
		t int32
		c float64
	}
	deg := func(i int32) float64 { return float64(s.ptr[i+1] - s.ptr[i]) }
	all := make([]scored, 0, len(co))
	dt := deg(t)
	for j, c := range co {
		all = append(all, scored{j, float64(c) / math.Sqrt(dt*deg(j))})
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.c, a.c); c != 0 {
			return c
		}
		return cmp.Compare(a.t, b.t)
	})
	out := make([]int32, min(len(all), s.keep))
	for i := range out {
		out[i] = all[i].t
	}
	return out
}

// TopK is the catalog indexes of the k highest finite scores, best first,
// ties to the lower index; allow (nil: every title) masks the rest.
func TopK(scores []float32, allow []bool, k int) []int32 { return topK(scores, allow, k) }

// IsModelFile says whether b starts like a model file (Load still checks
// the rest), so a loader can tell a recommendation model from other kinds
// of model artifact.
func IsModelFile(b []byte) bool { return bytes.HasPrefix(b, []byte(magic+" ")) }
