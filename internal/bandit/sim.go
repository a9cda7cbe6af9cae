package bandit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// World is a planted world for tests and demos: members with a market, a
// tenure, a device and an hour of day, a page of rows and titles with
// artwork variants, and click probabilities that depend on the context in
// a way a linear model over the one-hot context can learn:
//
//   - rows: market A clicks "trending" first, B "top_picks", C "top10" —
//     except C's veterans, who want "continue";
//   - artwork: variant 2 of every title wins in market A, variant 0 in B,
//     variant 1 in C.
//
// The reward of a row order is a click on the row placed first (so the
// first-position evaluation of Evaluate is exact here); the reward of an
// artwork is a click on the title.
type World struct {
	Markets  []string
	Tenures  []string
	Devices  []string
	Rows     []string
	Titles   []string
	Artworks int // variants per title

	// The planted effects on the click probability: of a row placed first
	// by market and by tenure, of an artwork variant by market.
	rowMarket, rowTenure map[string]map[string]float64
	artMarket            map[string][]float64
}

// NewWorld is the planted world with six rows and the given number of
// titles with three artwork variants each.
func NewWorld(titles int) *World {
	w := &World{
		Markets:  []string{"A", "B", "C"},
		Tenures:  []string{"new", "regular", "veteran"},
		Devices:  []string{"tv", "mobile"},
		Rows:     []string{"trending", "top_picks", "continue", "new_releases", "because_you_watched", "top10"},
		Artworks: 3,
		rowMarket: map[string]map[string]float64{
			"A": {"trending": 0.35, "top_picks": 0.10},
			"B": {"top_picks": 0.35, "trending": 0.05},
			"C": {"top10": 0.20, "continue": 0.05},
		},
		rowTenure: map[string]map[string]float64{
			"new":     {"top10": 0.12, "continue": -0.05},
			"veteran": {"continue": 0.25},
		},
		artMarket: map[string][]float64{"A": {0, 0, 0.15}, "B": {0.15, 0, 0}, "C": {0, 0.12, 0}},
	}
	for i := range titles {
		w.Titles = append(w.Titles, fmt.Sprintf("t%02d", i))
	}
	return w
}

// Featurizer is the encoding the world's effects are linear in: market,
// tenure and device one-hot, hour of day in four buckets.
func (w *World) Featurizer() (*Featurizer, error) {
	return NewFeaturizer([]Feature{
		{Name: "market", Type: Category, Values: w.Markets},
		{Name: "tenure", Type: Category, Values: w.Tenures},
		{Name: "device", Type: Category, Values: w.Devices},
		{Name: "hour", Type: Bucket, Bounds: []float64{6, 12, 18}},
	})
}

// ArtworkID is the id of a title's variant.
func ArtworkID(title string, variant int) string { return title + "-a" + strconv.Itoa(variant) }

// ArtworkIDs are a title's variant ids.
func (w *World) ArtworkIDs(title string) []string {
	ids := make([]string, w.Artworks)
	for i := range ids {
		ids[i] = ArtworkID(title, i)
	}
	return ids
}

type worldCtx struct {
	market, tenure, device string
	hour                   float64
}

func readCtx(attrs map[string]any) worldCtx {
	c := worldCtx{}
	c.market, _ = attrs["market"].(string)
	c.tenure, _ = attrs["tenure"].(string)
	c.device, _ = attrs["device"].(string)
	c.hour, _ = numberValue(attrs["hour"])
	return c
}

// RowClick is the probability that a member in this context clicks when
// row is placed first.
func (w *World) RowClick(attrs map[string]any, row string) float64 {
	c := readCtx(attrs)
	p := 0.10 + w.rowMarket[c.market][row] + w.rowTenure[c.tenure][row]
	if c.device == "tv" && row == "continue" {
		p += 0.03
	}
	if c.hour >= 18 && row == "trending" {
		p += 0.03
	}
	return p
}

// ArtworkClick is the probability of a click on title shown with the
// variant art.
func (w *World) ArtworkClick(attrs map[string]any, title, art string) float64 {
	c := readCtx(attrs)
	variant := -1
	for i := range w.Artworks {
		if ArtworkID(title, i) == art {
			variant = i
		}
	}
	if variant < 0 {
		return 0
	}
	n, _ := strconv.Atoi(title[1:])
	p := 0.05 + 0.01*float64(n%10)
	if m := w.artMarket[c.market]; m != nil {
		p += m[variant]
	}
	if c.tenure == "new" && variant == 0 {
		p += 0.03
	}
	if c.device == "mobile" && variant == 1 {
		p += 0.02
	}
	return p
}

// BestRow is the planted best first row.
func (w *World) BestRow(attrs map[string]any) string {
	best := w.Rows[0]
	for _, r := range w.Rows[1:] {
		if w.RowClick(attrs, r) > w.RowClick(attrs, best) {
			best = r
		}
	}
	return best
}

// BestArtwork is the planted best variant of title.
func (w *World) BestArtwork(attrs map[string]any, title string) string {
	ids := w.ArtworkIDs(title)
	best := ids[0]
	for _, a := range ids[1:] {
		if w.ArtworkClick(attrs, title, a) > w.ArtworkClick(attrs, title, best) {
			best = a
		}
	}
	return best
}

// Contexts are every context of the world; each is equally likely.
func (w *World) Contexts() []map[string]any {
	var out []map[string]any
	for _, m := range w.Markets {
		for _, t := range w.Tenures {
			for _, d := range w.Devices {
				for h := range 24 {
					out = append(out, map[string]any{"market": m, "tenure": t, "device": d, "hour": float64(h)})
				}
			}
		}
	}
	return out
}

func (w *World) randomContext(r *rand.Rand) map[string]any {
	return map[string]any{
		"market": w.Markets[r.IntN(len(w.Markets))],
		"tenure": w.Tenures[r.IntN(len(w.Tenures))],
		"device": w.Devices[r.IntN(len(w.Devices))],
		"hour":   float64(r.IntN(24)),
	}
}

// Simulate serves pages pages with p (every row and title of the world,
// contexts drawn at random) and draws each decision's reward from the
// planted click probabilities; emit gets each decision with its reward.
// The same seed gives the same pages, decisions and rewards.
func (w *World) Simulate(ctx context.Context, p *Policy, seed uint64, pages int, emit func(Decision, Reward) error) error {
	r := rand.New(rand.NewPCG(seed, 0x62616e646974))
	// Page i is i seconds after a fixed start, so that a simulation is
	// reproducible to the byte.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	titles := make([]TitleArtwork, len(w.Titles))
	for i, t := range w.Titles {
		titles[i] = TitleArtwork{Title: t, Artworks: w.ArtworkIDs(t)}
	}
	for i := range pages {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		at := start.Add(time.Duration(i) * time.Second)
		attrs := w.randomContext(r)
		page, err := p.DecidePage(PageRequest{ID: fmt.Sprintf("s%d-%d", seed, i), At: at, Context: attrs, Rows: w.Rows, Titles: titles})
		if err != nil {
			return err
		}
		click := func(prob float64) float64 {
			if r.Float64() < prob {
				return 1
			}
			return 0
		}
		rewardAt := at.Add(time.Minute)
		if page.Rows != nil {
			d := *page.Rows
			if err := emit(d, Reward{ID: d.ID, Value: click(w.RowClick(attrs, d.Chosen[0])), At: rewardAt}); err != nil {
				return err
			}
		}
		for _, d := range page.Artwork {
			if err := emit(d, Reward{ID: d.ID, Value: click(w.ArtworkClick(attrs, d.Title, d.Chosen[0])), At: rewardAt}); err != nil {
				return err
			}
		}
	}
	return nil
}

// UniformPolicy is the logging policy of a simulation: ε = 1, every
// artwork with probability 1/K and every row order with 1/K!.
func (w *World) UniformPolicy(seed uint64) (*Policy, error) {
	fz, err := w.Featurizer()
	if err != nil {
		return nil, err
	}
	return NewPolicy(fz, Params{Alpha: 0, Epsilon: 1, Lambda: 1, Seed: seed})
}

// TrueValue is p's exact expected reward per kind in this world: the
// average over every context (and, for artwork, every title) of
// Σ_a π(a|x)·P(click | x, a), π being p's probability of choosing a (of
// placing it first, for a row order).
func (w *World) TrueValue(p *Policy) (map[Kind]float64, error) {
	ctxs := w.Contexts()
	var rows, art float64
	eps := p.params.Epsilon
	for _, c := range ctxs {
		best, err := p.Greedy(c, RowOrder, "", w.Rows)
		if err != nil {
			return nil, err
		}
		for _, a := range w.Rows {
			pa := eps / float64(len(w.Rows))
			if a == best {
				pa += 1 - eps
			}
			rows += pa * w.RowClick(c, a)
		}
		for _, t := range w.Titles {
			ids := w.ArtworkIDs(t)
			best, err := p.Greedy(c, Artwork, t, ids)
			if err != nil {
				return nil, err
			}
			for _, a := range ids {
				pa := eps / float64(len(ids))
				if a == best {
					pa += 1 - eps
				}
				art += pa * w.ArtworkClick(c, t, a)
			}
		}
	}
	n := float64(len(ctxs))
	return map[Kind]float64{RowOrder: rows / n, Artwork: art / (n * float64(len(w.Titles)))}, nil
}
