package rec

import (
	"bytes"
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

// TopK is the catalog indexes of the k highest finite scores, best first,
// ties to the lower index; allow (nil: every title) masks the rest.
func TopK(scores []float32, allow []bool, k int) []int32 { return topK(scores, allow, k) }

// IsModelFile says whether b starts like a model file (Load still checks
// the rest), so a loader can tell a recommendation model from other kinds
// of model artifact.
func IsModelFile(b []byte) bool { return bytes.HasPrefix(b, []byte(magic+" ")) }
