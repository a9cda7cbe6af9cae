package bandit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/baton-ml/baton/internal/fault"
)

// chiSquareP is the goodness-of-fit p-value of observed counts against
// expected probabilities.
func chiSquareP(obs map[string]int, prob map[string]float64, n int) float64 {
	chi := 0.0
	for k, p := range prob {
		e := p * float64(n)
		d := float64(obs[k]) - e
		chi += d * d / e
	}
	return distuv.ChiSquared{K: float64(len(prob) - 1)}.Survival(chi)
}

// Test (3): over many seeded decisions, the frequency of each action
// matches the propensity logged with it (chi-square goodness of fit), for
// artwork, for full row orders and for the row placed first; and the
// propensities of all actions sum to one.
func TestPropensitiesAreExact(t *testing.T) {
	w := NewWorld(3)
	fz := worldFZ(t, w)
	// A trained policy, so that the greedy part is not the first arm.
	events := simulateEvents(t, w, uniform(t, w, 3), 5, 600)
	params := DefaultParams()
	params.Epsilon = 0.3
	p, err := Fit(context.Background(), events, fz, params)
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]any{"market": "B", "tenure": "veteran", "device": "tv", "hour": 20.0}
	rows := []string{"trending", "top_picks", "continue"} // 3! = 6 orders
	arts := w.ArtworkIDs("t01")
	const n = 30000
	orders, firsts, chosenArt := map[string]int{}, map[string]int{}, map[string]int{}
	orderProb, firstProb, artProb := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for i := range n {
		page, err := p.DecidePage(PageRequest{ID: fmt.Sprintf("m%d", i), Context: attrs, Rows: rows,
			Titles: []TitleArtwork{{Title: "t01", Artworks: arts}}})
		if err != nil {
			t.Fatal(err)
		}
		r, a := page.Rows, page.Artwork[0]
		key := strings.Join(r.Chosen, ",")
		orders[key]++
		firsts[r.Chosen[0]]++
		chosenArt[a.Chosen[0]]++
		for m, kv := range map[*map[string]float64]struct {
			k string
			p float64
		}{&orderProb: {key, r.Propensity}, &firstProb: {r.Chosen[0], r.FirstPropensity}, &artProb: {a.Chosen[0], a.Propensity}} {
			if old, ok := (*m)[kv.k]; ok && old != kv.p {
				t.Fatalf("action %s logged with propensity %v and %v in one context", kv.k, old, kv.p)
			}
			(*m)[kv.k] = kv.p
		}
	}
	for name, c := range map[string]struct {
		obs  map[string]int
		prob map[string]float64
		k    int
	}{"row order": {orders, orderProb, 6}, "first row": {firsts, firstProb, 3}, "artwork": {chosenArt, artProb, 3}} {
		if len(c.prob) != c.k {
			t.Fatalf("%s: %d actions seen, want all %d (each has probability ≥ ε/K)", name, len(c.prob), c.k)
		}
		sum := 0.0
		for _, p := range c.prob {
			sum += p
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("%s: propensities sum to %v, want 1", name, sum)
		}
		if pv := chiSquareP(c.obs, c.prob, n); pv < 0.001 {
			t.Errorf("%s: frequencies %v do not match propensities %v (chi-square p = %.2g)", name, c.obs, c.prob, pv)
		}
	}
	// The greedy order is the likeliest: 1−ε+ε/6.
	if top := slices.Max(slices.Collect(maps.Values(orderProb))); math.Abs(top-(0.7+0.3/6)) > 1e-12 {
		t.Errorf("greedy order propensity %v, want %v", top, 0.7+0.3/6)
	}
}

// A decision replays: the same policy and id give the same choice, and a
// page's decisions are the single decisions of the same ids.
func TestDecisionsReplay(t *testing.T) {
	w := NewWorld(4)
	p := uniform(t, w, 9)
	attrs := map[string]any{"market": "A", "tenure": "new", "device": "mobile", "hour": 3}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	titles := []TitleArtwork{{Title: "t00", Artworks: w.ArtworkIDs("t00")}, {Title: "t03", Artworks: w.ArtworkIDs("t03")}}
	req := PageRequest{ID: "page-1", At: at, Context: attrs, Rows: w.Rows, Titles: titles}
	a, err := p.DecidePage(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.DecidePage(req)
	if !slices.Equal(a.Rows.Chosen, b.Rows.Chosen) || a.Artwork[1].Chosen[0] != b.Artwork[1].Chosen[0] {
		t.Fatal("the same page decided twice differs")
	}
	single, err := p.Decide(Request{ID: PageRowsID("page-1"), At: at, Context: attrs, Kind: RowOrder, Arms: w.Rows})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(single.Chosen, a.Rows.Chosen) || single.Propensity != a.Rows.Propensity {
		t.Errorf("Decide %v ≠ DecidePage %v", single.Chosen, a.Rows.Chosen)
	}
	art, _ := p.Decide(Request{ID: PageArtworkID("page-1", "t03"), Context: attrs, Kind: Artwork, Title: "t03", Arms: titles[1].Artworks})
	if art.Chosen[0] != a.Artwork[1].Chosen[0] {
		t.Errorf("Decide %v ≠ DecidePage %v", art.Chosen, a.Artwork[1].Chosen)
	}
	if want := 1.0 / 720; math.Abs(a.Rows.Propensity-want) > 1e-15 || math.Abs(a.Rows.FirstPropensity-1.0/6) > 1e-15 {
		t.Errorf("uniform policy: propensity %v, first %v; want 1/720 and 1/6", a.Rows.Propensity, a.Rows.FirstPropensity)
	}
}

func TestDecideRefusesBadRequests(t *testing.T) {
	w := NewWorld(1)
	p := uniform(t, w, 1)
	many := make([]string, MaxRows+1)
	for i := range many {
		many[i] = fmt.Sprint("r", i)
	}
	for name, req := range map[string]Request{
		"no id":        {Kind: Artwork, Title: "t", Arms: []string{"a"}},
		"no kind":      {ID: "x", Arms: []string{"a"}},
		"no arms":      {ID: "x", Kind: Artwork, Title: "t"},
		"twice":        {ID: "x", Kind: RowOrder, Arms: []string{"a", "b", "a"}},
		"empty arm":    {ID: "x", Kind: RowOrder, Arms: []string{"a", ""}},
		"no title":     {ID: "x", Kind: Artwork, Arms: []string{"a"}},
		"rows > max":   {ID: "x", Kind: RowOrder, Arms: many},
		"bad number":   {ID: "x", Kind: Artwork, Title: "t", Arms: []string{"a"}, Context: map[string]any{"hour": "noon"}},
		"bad category": {ID: "x", Kind: Artwork, Title: "t", Arms: []string{"a"}, Context: map[string]any{"market": []int{1}}},
	} {
		_, err := p.Decide(req)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !isInvalid(err) {
			t.Errorf("%s: %v is not invalid input", name, err)
		}
	}
}

func isInvalid(err error) bool { return errors.Is(err, fault.Invalid) }
