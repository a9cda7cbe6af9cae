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

// PageScores is ScoreAll without the copy when it can: member's score of
// every title in market and, when those are the popularity of a market
// (an unknown member, one without history, a popularity model), the
// market whose popularity they are ("": across all markets, as
// Popularity("") answers) and true. The slice is then the model's own, to
// be read only; otherwise it is dst, filled.
func (r *Recommender) PageScores(member, market string, dst []float32) (scores []float32, popMarket string, popular bool) {
	u := r.b.member(member)
	mk := r.b.marketOf(u, market)
	if _, ok := r.s.(popScorer); ok && !r.b.cold(u) {
		// A popularity model ranks a known member by the member's own
		// market (popScorer), whatever market the request names.
		mk = r.b.marketOf(u, "")
	} else if !r.b.cold(u) {
		r.s.scores(r.b, u, dst[:len(r.b.Titles)])
		return dst[:len(r.b.Titles)], "", false
	}
	if mk < 0 {
		return r.b.popRow(mk), "", true
	}
	return r.b.popRow(mk), r.b.Markets[mk], true
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

// IsModelFile says whether b starts like a model file (Load still checks
// the rest), so a loader can tell a recommendation model from other kinds
// of model artifact.
func IsModelFile(b []byte) bool { return bytes.HasPrefix(b, []byte(magic+" ")) }
