package serve

// The page as it was built before the per-model tables and pooled
// buffers (a selection over the whole catalog per row, a mask per row,
// neighbours scored per anchor title, a map per set), kept as the
// reference the page built now must equal, item for item.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/rec"
)

// refRows is the old rowsModel without personalization.
type refRows struct {
	m        *refModel
	cfg      RecommendConfig
	fallback bool
	gate     float64
}

type refModel struct {
	r      *rec.Recommender
	titles []rec.Title
	nbrMu  sync.RWMutex
	nbrs   map[int32][]int32 // title → the titles most like it, kept once asked
	genres []uint64          // per title, a bit per genre (genres past 64 share bits)
	isNew  []bool            // per title: by a new creator

	mu       sync.Mutex
	popOrder map[string][]int32 // market → titles by popularity, most first
	hidden   map[string][]bool  // market → titles not available there

	pool sync.Pool // *[]float32, one score per title
}

func refLoad(b []byte) (*refModel, error) {
	r, err := rec.Load(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	m := &refModel{r: r, titles: r.Titles(), nbrs: map[int32][]int32{},
		popOrder: map[string][]int32{}, hidden: map[string][]bool{}}
	bit := map[string]int{}
	m.genres = make([]uint64, len(m.titles))
	m.isNew = make([]bool, len(m.titles))
	for i, t := range m.titles {
		for _, g := range t.Genres {
			k, ok := bit[g]
			if !ok {
				k = len(bit) % 64
				bit[g] = k
			}
			m.genres[i] |= 1 << k
		}
		m.isNew[i] = t.NewCreator
	}
	return m, nil
}

func (m *refModel) scores() *[]float32 {
	if p, ok := m.pool.Get().(*[]float32); ok {
		return p
	}
	s := make([]float32, len(m.titles))
	return &s
}

// refUnknownMarket keys the caches for every market the model does not
// know: they all share one popularity row (the global one) and one
// availability (only titles without a market list), and the market is
// the request's attribute, so keying by it would let requests grow the
// caches without bound.
const refUnknownMarket = "\x00unknown"

func (m *refModel) cacheKey(market string) string {
	if market == "" || slices.Contains(m.r.Markets(), market) {
		return market
	}
	return refUnknownMarket
}

// byPopularity is the market's titles, most popular first.
func (m *refModel) byPopularity(market string) []int32 {
	market = m.cacheKey(market)
	if market == refUnknownMarket {
		market = "" // the global row, as rec.Popularity gives an unknown market
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.popOrder[market]; ok {
		return o
	}
	pop := m.r.Popularity(market)
	o := rec.TopK(pop, nil, len(pop))
	m.popOrder[market] = o
	return o
}

// neighbours is the titles most like title t (rec's Similar: the model's
// own neighbours, factor cosine or co-plays), computed once per title.
func (m *refModel) neighbours(t int) []int32 {
	m.nbrMu.RLock()
	nb, ok := m.nbrs[int32(t)]
	m.nbrMu.RUnlock()
	if ok {
		return nb
	}
	items := m.r.Similar(m.titles[t].ID, 200, "")
	nb = make([]int32, 0, len(items))
	for _, it := range items {
		if i, ok := m.r.TitleIndex(it.Title); ok {
			nb = append(nb, int32(i))
		}
	}
	m.nbrMu.Lock()
	m.nbrs[int32(t)] = nb
	m.nbrMu.Unlock()
	return nb
}

// unavailable is, per title, whether it may not be shown in market.
func (m *refModel) unavailable(market string) []bool {
	key := m.cacheKey(market)
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hidden[key]; ok {
		return h
	}
	h := make([]bool, len(m.titles))
	for i := range m.titles {
		h[i] = !m.titles[i].AvailableIn(market)
	}
	m.hidden[key] = h
	return h
}

// jaccard is the genre Jaccard similarity of two titles.
func (m *refModel) jaccard(a, b int32) float64 {
	ga, gb := m.genres[a], m.genres[b]
	u := bits.OnesCount64(ga | gb)
	if u == 0 {
		return 0
	}
	return float64(bits.OnesCount64(ga&gb)) / float64(u)
}

// refPage is one request's working state.
type refPage struct {
	m      *refModel
	scores []float32
	market string
	taken  []bool  // titles already on the refPage, seen, or not available
	allow  []bool  // mask's buffer
	ranked []int32 // the member's best titles not seen and available (pick)
}

// Predict builds the member's refPage. Its confidence is the model's for the
// member (a popularity model is always sure).
func (rm *refRows) Predict(ctx context.Context, in Input) (Output, error) {
	m := rm.m
	conf := m.r.Confidence(in.Key)
	if conf < rm.gate {
		return Output{Confidence: conf}, nil
	}
	market, _ := in.Attributes["market"].(string)
	if market == "" {
		market, _ = m.r.MemberMarket(in.Key)
	}
	sp := m.scores()
	defer m.pool.Put(sp)
	m.r.ScoreAll(in.Key, market, *sp)
	p := &refPage{m: m, scores: *sp, market: market, taken: slices.Clone(m.unavailable(market))}
	for _, t := range m.r.Seen(in.Key) {
		p.taken[t] = true
	}
	out := Page{Member: in.Key, Market: market, Rows: []PageRow{}}
	for _, rc := range rm.cfg.Rows {
		if err := ctx.Err(); err != nil {
			return Output{}, err
		}
		row, ok := rm.row(p, rc, in)
		if ok {
			out.Rows = append(out.Rows, row)
		}
	}
	return Output{Prediction: out, Confidence: conf}, nil
}

func (rm *refRows) row(p *refPage, rc RowConfig, in Input) (PageRow, bool) {
	m := p.m
	n := rc.Items
	if n == 0 {
		n = 20
		if rc.Type == RowTopInMarket {
			n = 10
		}
	}
	where := p.market
	if where == "" {
		where = "all markets"
	}
	row := PageRow{ID: rc.Type, Title: rc.Title}
	var cands []int32 // eligible titles, most relevant first
	rerank := true
	switch rc.Type {
	case RowTopPicks:
		row.Title = orDefault(row.Title, "Top Picks for You")
		cands = p.pick(3*n, nil)
		cands = append(cands, p.pick(n, func(t int32) bool { return m.isNew[t] })...)
		if rm.fallback {
			row.Reason = "the most played titles in " + where + " (popularity: the model could not serve you)"
		} else {
			row.Reason = fmt.Sprintf("ranked for you by the %s model from what you played", m.r.Kind())
		}
	case RowBecauseYouWatched:
		anchor, ok := rm.anchor(in)
		if !ok {
			return PageRow{}, false
		}
		ai, _ := m.r.TitleIndex(anchor)
		row.Title = strings.ReplaceAll(orDefault(row.Title, "Because You Watched {title}"), "{title}", m.titles[ai].Name)
		row.Reason = fmt.Sprintf("members who watched %s also watched these", m.titles[ai].Name)
		if k := m.r.Kind(); k == rec.KindALS || k == rec.KindMultiTask {
			row.Reason = fmt.Sprintf("the titles most like %s in the tastes the %s model learned", m.titles[ai].Name, k)
		}
		for _, t := range m.neighbours(ai) {
			if !p.taken[t] && t != int32(ai) {
				cands = append(cands, t)
			}
		}
	case RowTrending:
		row.Title = orDefault(row.Title, "Trending Now")
		// The most played of the market, in the member's order.
		for _, t := range m.byPopularity(p.market) {
			if !p.taken[t] {
				cands = append(cands, t)
				if len(cands) == 5*n {
					break
				}
			}
		}
		p.sortByScore(cands)
		row.Reason = "among the most played in " + where + ", ordered for you"
	case RowTopInMarket:
		row.Title = orDefault(row.Title, "Top 10 in Your Country")
		rerank = false
		// A chart: the market's top titles as they are, seen or not.
		for _, t := range m.byPopularity(p.market) {
			if !m.unavailable(p.market)[t] {
				cands = append(cands, t)
				if len(cands) == n {
					break
				}
			}
		}
		row.Reason = "the most played titles in " + where
	case RowNew:
		row.Title = orDefault(row.Title, "New on baton")
		within := rc.Within.D()
		if within <= 0 {
			within = defaultNewWithin
		}
		since := m.r.Until() - int64(within/time.Second)
		// The best-scored of the recent releases, from the member's best
		// titles; a member with few recent ones among those gets a
		// selection over every title's score.
		recent := func(t int32) bool { return m.titles[t].Released >= since }
		cands = p.pick(3*n, recent)
		if len(cands) < n {
			mask := p.mask(func(t int) bool { return recent(int32(t)) })
			cands = rec.TopK(p.scores, mask, 3*n)
			cands = append(cands, rec.TopK(p.scores, p.and(mask, m.isNew), n)...)
		} else {
			cands = append(cands, p.pick(n, func(t int32) bool { return recent(t) && m.isNew[t] })...)
		}
		row.Reason = "released in the last " + Duration(within).String() + ", ordered for you"
	}
	row.Title = strings.ReplaceAll(row.Title, "{market}", where)
	if len(cands) == 0 {
		return PageRow{}, false
	}
	var picked []int32
	if rerank {
		picked = rm.rerank(p, cands, n)
	} else {
		picked = cands[:min(n, len(cands))]
	}
	row.Items = make([]PageItem, len(picked))
	for i, t := range picked {
		tt := &m.titles[t]
		row.Items[i] = PageItem{Title: tt.ID, Name: tt.Name, Score: float64(p.scores[t]), NewCreator: tt.NewCreator}
		if rerank {
			// Titles shown in one personal row are not repeated in the next.
			p.taken[t] = true
		}
	}
	row.Diversity, row.NewCreatorShare = m.rowStats(picked)
	return row, true
}

// anchor is the title of "Because You Watched": the anchor feature's
// value when it names a catalog title, else the member's most played.
func (rm *refRows) anchor(in Input) (string, bool) {
	if f := rm.cfg.AnchorFeature; f != "" {
		if s, ok := in.Features[f].(string); ok {
			if _, known := rm.m.r.TitleIndex(s); known {
				return s, true
			}
		}
	}
	return rm.m.r.MostPlayed(in.Key)
}

// pick is up to k of the member's best titles not taken (and for which ok
// holds), best first.
func (p *refPage) pick(k int, ok func(t int32) bool) []int32 {
	if p.ranked == nil {
		p.ranked = rec.TopK(p.scores, p.mask(nil), rankedDepth)
	}
	out := make([]int32, 0, k)
	for _, t := range p.ranked {
		if len(out) == k {
			break
		}
		if !p.taken[t] && (ok == nil || ok(t)) {
			out = append(out, t)
		}
	}
	return out
}

// mask is the titles not taken (and, with ok, for which ok holds), in
// the refPage's one mask buffer: valid until the next mask.
func (p *refPage) mask(ok func(t int) bool) []bool {
	if p.allow == nil {
		p.allow = make([]bool, len(p.taken))
	}
	for t := range p.allow {
		p.allow[t] = !p.taken[t] && (ok == nil || ok(t))
	}
	return p.allow
}

// and narrows mask a to the titles also in b, in place.
func (p *refPage) and(a, b []bool) []bool {
	for t := range a {
		a[t] = a[t] && b[t]
	}
	return a
}

func (p *refPage) sortByScore(ts []int32) {
	slices.SortStableFunc(ts, func(a, b int32) int {
		switch sa, sb := p.scores[a], p.scores[b]; {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
}

// rerank picks n of cands (most relevant first): maximal marginal
// relevance over genres, then the new creators' least share.
func (rm *refRows) rerank(p *refPage, cands []int32, n int) []int32 {
	m := p.m
	cands = refDedupe(cands)
	d := rm.cfg.Rerank.Diversity
	pool := cands[:min(len(cands), max(3*n, n+20))]
	var picked []int32
	if d == 0 {
		picked = slices.Clone(pool[:min(n, len(pool))])
	} else {
		// Relevance is the rank in the row's order, scaled to [0, 1]:
		// scores of different rows' sources are not comparable, ranks are.
		rel := make([]float64, len(pool))
		for i := range pool {
			rel[i] = 1 - float64(i)/float64(len(pool))
		}
		maxSim := make([]float64, len(pool))
		used := make([]bool, len(pool))
		for len(picked) < n && len(picked) < len(pool) {
			best, bv := -1, math.Inf(-1)
			for i := range pool {
				if used[i] {
					continue
				}
				if v := (1-d)*rel[i] - d*maxSim[i]; v > bv {
					best, bv = i, v
				}
			}
			used[best] = true
			picked = append(picked, pool[best])
			for i := range pool {
				if !used[i] {
					maxSim[i] = max(maxSim[i], m.jaccard(pool[i], pool[best]))
				}
			}
		}
	}
	share := rm.cfg.Rerank.NewCreatorShare
	if share <= 0 || len(picked) == 0 {
		return picked
	}
	need := int(math.Ceil(share * float64(len(picked))))
	have := 0
	in := map[int32]bool{}
	for _, t := range picked {
		in[t] = true
		if m.isNew[t] {
			have++
		}
	}
	// The best new creators' titles not in the row replace the
	// lowest-placed others, one for one.
	j := len(picked) - 1
	for _, t := range cands {
		if have >= need {
			break
		}
		if in[t] || !m.isNew[t] {
			continue
		}
		for j >= 0 && m.isNew[picked[j]] {
			j--
		}
		if j < 0 {
			break
		}
		picked[j] = t
		in[t] = true
		have++
		j--
	}
	return picked
}

func refDedupe(ts []int32) []int32 {
	seen := make(map[int32]bool, len(ts))
	out := ts[:0:0]
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// rowStats is a row's intra-list diversity (1 - mean pairwise genre
// Jaccard; 0 for fewer than two titles) and new creators' share.
func (m *refModel) rowStats(ts []int32) (diversity, newShare float64) {
	if len(ts) == 0 {
		return 0, 0
	}
	var sum float64
	pairs := 0
	nw := 0
	for i, a := range ts {
		if m.isNew[a] {
			nw++
		}
		for _, b := range ts[i+1:] {
			sum += m.jaccard(a, b)
			pairs++
		}
	}
	if pairs > 0 {
		diversity = 1 - sum/float64(pairs)
	}
	return round4(diversity), round4(float64(nw) / float64(len(ts)))
}

// TestPageMatchesReference: the page built from the model's tables and a
// pooled page's buffers is the reference page, row for row and item for
// item, for every model kind, row type and re-ranking, for known members
// (the gate off), unknown ones, in their market, another, an unknown one
// and none, with and without the anchor feature; before the neighbour
// table is built and after; one request after another (pooled buffers
// reused) and many at once.
func TestPageMatchesReference(t *testing.T) {
	w, files := recWorld()
	models := map[string][]byte{rec.KindALS: files[rec.KindALS], rec.KindPopularity: files[rec.KindPopularity]}
	train := func(w *rec.World, name, kind string, params map[string]string) {
		m, err := rec.Train(context.Background(), kind, w.Data, params)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := m.Save(&b); err != nil {
			t.Fatal(err)
		}
		models[name] = b.Bytes()
	}
	for kind, params := range map[string]map[string]string{
		rec.KindKNN: {}, rec.KindPPR: {}, rec.KindMultiTask: {"factors": "8"}, rec.KindBlend: {"validation": "0.5"},
	} {
		train(w, kind, kind, params)
	}
	// A catalog of 2,000 titles, where a member's best 200 hold fewer
	// recent titles than a row of new ones needs (the row then selects
	// among every recent title), and more recent ones than three rows'
	// worth (the new creators' own selection counts).
	big, err := rec.Synthesize(rec.Synth{Seed: 9, Members: 200, Titles: 2000, Interactions: 200 * 30})
	if err != nil {
		t.Fatal(err)
	}
	train(big, "als-2000", rec.KindALS, map[string]string{"factors": "8", "iterations": "2"})
	configs := []RecommendConfig{
		{Rows: allRows(), AnchorFeature: "last"},
		{Rows: allRows(), Rerank: Rerank{Diversity: 0.3, NewCreatorShare: 0.2}, AnchorFeature: "last"},
		{Rows: []RowConfig{{Type: RowNew, Items: 40, Within: Duration(200 * 24 * time.Hour)}, {Type: RowTrending, Items: 5},
			{Type: RowTopPicks, Items: 7}, {Type: RowBecauseYouWatched, Items: 30}}, Rerank: Rerank{Diversity: 0.7, NewCreatorShare: 1}},
		{Rows: []RowConfig{{Type: RowNew, Items: 3, Within: Duration(time.Hour)}, {Type: RowTopInMarket, Items: 100}}, Rerank: Rerank{NewCreatorShare: 0.5}},
		{Rows: []RowConfig{{Type: RowNew, Items: 10, Within: Duration(60 * 24 * time.Hour)}}, Rerank: Rerank{NewCreatorShare: 1}},
	}
	inputsOf := func(w *rec.World) []Input {
		var inputs []Input
		for i, mb := range w.Data.Members[:60] {
			in := Input{Key: mb.ID, Features: map[string]any{}}
			switch i % 5 {
			case 1:
				in.Attributes = map[string]any{"market": w.Data.Members[(i+1)%len(w.Data.Members)].Market}
			case 2:
				in.Attributes = map[string]any{"market": "XX"}
			case 3:
				in.Features["last"] = w.Data.Titles[(i*37)%len(w.Data.Titles)].ID
			case 4:
				in.Features["last"] = "no such title"
			}
			inputs = append(inputs, in)
		}
		for i := range 20 {
			in := Input{Key: fmt.Sprintf("nobody-%d", i), Features: map[string]any{}}
			if i%2 == 0 {
				in.Attributes = map[string]any{"market": w.Data.Markets[i%len(w.Data.Markets)]}
			}
			if i%3 == 0 {
				in.Features["last"] = w.Data.Titles[(i*11)%len(w.Data.Titles)].ID
			}
			inputs = append(inputs, in)
		}
		return inputs
	}
	ctx := context.Background()
	for kind, b := range models {
		inputs := inputsOf(w)
		if kind == "als-2000" {
			inputs = inputsOf(big)
		}
		ref, err := refLoad(b)
		if err != nil {
			t.Fatal(err)
		}
		m, err := loadRec(b)
		if err != nil {
			t.Fatal(err)
		}
		for ci, cfg := range configs {
			want := make([]Output, len(inputs))
			rr := &refRows{m: ref, cfg: cfg}
			for i, in := range inputs {
				if want[i], err = rr.Predict(ctx, in); err != nil {
					t.Fatal(err)
				}
			}
			rm := &rowsModel{m: m, cfg: cfg}
			check := func(when string, i int, got Output) {
				t.Helper()
				if !pagesEqual(got, want[i]) {
					t.Fatalf("%s, config %d, %s, %+v:\n got %s\nwant %s", kind, ci, when, inputs[i], pageText(got), pageText(want[i]))
				}
			}
			for i, in := range inputs {
				got, err := rm.Predict(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				check("one after another", i, got)
			}
			if err := m.buildNeighbours(ctx); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := g; i < len(inputs); i += 4 {
						got, err := rm.Predict(ctx, inputs[i])
						if err != nil {
							t.Error(err)
							return
						}
						if !pagesEqual(got, want[i]) {
							t.Errorf("%s, config %d, with the table, at once, %+v:\n got %s\nwant %s", kind, ci, inputs[i], pageText(got), pageText(want[i]))
							return
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
		}
	}
}

func pagesEqual(a, b Output) bool {
	pa, oka := a.Prediction.(Page)
	pb, okb := b.Prediction.(Page)
	if oka != okb || a.Confidence != b.Confidence || pa.Member != pb.Member || pa.Market != pb.Market || len(pa.Rows) != len(pb.Rows) {
		return false
	}
	for i := range pa.Rows {
		ra, rb := pa.Rows[i], pb.Rows[i]
		if ra.ID != rb.ID || ra.Title != rb.Title || ra.Reason != rb.Reason || ra.Diversity != rb.Diversity ||
			ra.NewCreatorShare != rb.NewCreatorShare || !slices.Equal(ra.Items, rb.Items) {
			return false
		}
	}
	return true
}

func pageText(o Output) string {
	p, ok := o.Prediction.(Page)
	if !ok {
		return fmt.Sprintf("%+v", o)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "confidence %g member %s market %s", o.Confidence, p.Member, p.Market)
	for _, r := range p.Rows {
		fmt.Fprintf(&b, "\n  %s %q %q %g %g:", r.ID, r.Title, r.Reason, r.Diversity, r.NewCreatorShare)
		for _, it := range r.Items {
			fmt.Fprintf(&b, " %s", it.Title)
		}
	}
	return b.String()
}

// released is every title released at or after since (a title released
// at since included), of new creators alone when asked, most recent first.
func TestReleased(t *testing.T) {
	_, files := recWorld()
	m, err := loadRec(files[rec.KindALS])
	if err != nil {
		t.Fatal(err)
	}
	for i, ti := range m.titles {
		since := ti.Released + int64(i%3) - 1 // at, just before and just after a release
		for _, newOnly := range []bool{false, true} {
			got := m.released(since, newOnly)
			n := 0
			for j, tj := range m.titles {
				if tj.Released >= since && (!newOnly || tj.NewCreator) {
					n++
					if !slices.Contains(got, int32(j)) {
						t.Fatalf("since %d (new only %v): title %d released %d is missing", since, newOnly, j, tj.Released)
					}
				}
			}
			if len(got) != n || !slices.IsSortedFunc(got, func(a, b int32) int { return int(m.titles[b].Released - m.titles[a].Released) }) {
				t.Fatalf("since %d (new only %v): %d titles (want %d), in order %v", since, newOnly, len(got), n, got)
			}
		}
	}
}

// A recommend endpoint's models go live with their neighbour tables built
// (Refresh builds them; no request scores the catalog against a new
// anchor title); a page without "Because You Watched" builds none.
func TestRefreshBuildsNeighbours(t *testing.T) {
	f, _ := recFixture(t, Rerank{})
	st := (*f.svc.state.Load())["home"]
	for _, v := range []*version{st.baseline, st.fallback} {
		if rm := v.m.(*rowsModel); rm.m.table.Load() == nil {
			t.Fatalf("%s version %d serves without its neighbour table", v.v.Model, v.v.Version)
		}
	}
	// A model of its own (another half-life): the endpoint above's models
	// are built already.
	w, _ := recWorld()
	m, err := rec.Train(context.Background(), rec.KindPopularity, w.Data, map[string]string{"half_life_days": "7"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := m.Save(&b); err != nil {
		t.Fatal(err)
	}
	f.recVersion(t, "rec-other", b.Bytes())
	f.endpoint(t, Endpoint{Name: "charts", Kind: KindRecommend, Model: "rec-other", Features: []string{"x"}, Fallback: Fallback{Static: []string{}},
		Recommend: &RecommendConfig{Rows: []RowConfig{{Type: RowTrending}}}})
	if rm := (*f.svc.state.Load())["charts"].baseline.m.(*rowsModel); rm.m.table.Load() != nil {
		t.Fatal("a page without Because You Watched built a neighbour table")
	}
}
