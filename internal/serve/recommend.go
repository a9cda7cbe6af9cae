package serve

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/rec"
)

// Endpoint kinds: predict answers a model's prediction as it is;
// recommend answers a page of named rows built from a recommendation
// model (package rec), re-ranked for diversity and new creators.
const (
	KindPredict   = "predict"
	KindRecommend = "recommend"
)

// Row types of a recommend endpoint.
const (
	RowTopPicks          = "top_picks"
	RowBecauseYouWatched = "because_you_watched"
	RowTrending          = "trending"
	RowTopInMarket       = "top_in_market"
	RowNew               = "new"
)

// RowTypes lists the row types, in the order a page usually shows them.
var RowTypes = []string{RowTopPicks, RowBecauseYouWatched, RowTrending, RowTopInMarket, RowNew}

// RecommendConfig is how a recommend endpoint builds its page.
type RecommendConfig struct {
	// Rows are the page's rows, in order. A row with nothing to show (no
	// anchor title, nothing new) is left out of the answer.
	Rows []RowConfig `json:"rows" yaml:"rows"`
	// AnchorFeature is an online feature holding the title the member
	// watched last (a `last` aggregate of a title field): the X of
	// "Because You Watched X". Without it, or when it is null, the title
	// the member played most in the model's training data is the anchor.
	AnchorFeature string `json:"anchor_feature,omitempty" yaml:"anchor_feature"`
	// Rerank shapes every row but top_in_market (a chart keeps its order).
	Rerank Rerank `json:"rerank,omitzero" yaml:"rerank"`
	// Personalize orders the rows and picks artwork with a contextual
	// bandit (package bandit) on the model's page; the fallback page is
	// never personalized (it stays deterministic).
	Personalize *Personalize `json:"personalize,omitempty" yaml:"personalize"`
}

// Personalize is a recommend endpoint's bandit.
type Personalize struct {
	// Model is the registry model whose production version is a bandit
	// policy file (baton bandit train).
	Model string `json:"model" yaml:"model"`
	// Artworks is how many artwork variants each title has (0: artwork is
	// not personalized); ArtworkItems how many titles at the head of each
	// row get an artwork decision (default 3).
	Artworks     int `json:"artworks,omitempty" yaml:"artworks"`
	ArtworkItems int `json:"artwork_items,omitempty" yaml:"artwork_items"`
}

// RowConfig is one row.
type RowConfig struct {
	// Type is top_picks, because_you_watched, trending, top_in_market or new.
	Type string `json:"type" yaml:"type"`
	// Title is what the page shows; {title} is the anchor title's name,
	// {market} the member's market. Each type has a default.
	Title string `json:"title,omitempty" yaml:"title"`
	// Items is how many titles the row holds (default 20; top_in_market 10).
	Items int `json:"items,omitempty" yaml:"items"`
	// Within is, for new, how recent a release counts as new, before the
	// end of the model's training data (default 30d).
	Within Duration `json:"within,omitzero" yaml:"within"`
}

// Rerank is the re-ranking stage of a row.
type Rerank struct {
	// Diversity in [0, 1) is the weight of maximal marginal relevance:
	// each next title maximises (1-d)·relevance - d·(its highest genre
	// Jaccard similarity to the titles already in the row). 0 keeps the
	// model's order.
	Diversity float64 `json:"diversity,omitempty" yaml:"diversity"`
	// NewCreatorShare in [0, 1] is the least share of a row's titles that
	// come from new creators (rounded up), when the row's candidates have
	// that many: the lowest-placed others give way to the best of them.
	NewCreatorShare float64 `json:"new_creator_share,omitempty" yaml:"new_creator_share"`
}

// Page is what a recommend endpoint answers (the response's prediction).
type Page struct {
	Member string    `json:"member"`
	Market string    `json:"market,omitempty"`
	Rows   []PageRow `json:"rows"`
	// Decision is the bandit's page decision, when the endpoint
	// personalizes: rewards are posted against its id (the row order's id
	// is ID + "/rows", a title's artwork's ID + "/art/" + the title).
	Decision *PageDecision `json:"decision,omitempty"`

	decisions *bandit.Page // to log once the page is served
	src       *recModel    // the model it came from, for PageStats
}

// PageDecision names a personalized page's decisions.
type PageDecision struct {
	ID     string `json:"id"`
	Policy string `json:"policy"`
	// Propensity is the probability the policy gave the row order shown.
	Propensity float64 `json:"propensity"`
}

// PageRow is one named row with its explanation and what re-ranking made
// of it.
type PageRow struct {
	ID     string     `json:"id"`
	Title  string     `json:"title"`
	Reason string     `json:"reason"`
	Items  []PageItem `json:"items"`
	// Diversity is the row's intra-list diversity (1 - mean pairwise
	// genre Jaccard); NewCreatorShare the share of its titles by new
	// creators.
	Diversity       float64 `json:"diversity"`
	NewCreatorShare float64 `json:"new_creator_share"`
}

// PageItem is one title of a row.
type PageItem struct {
	Title      string  `json:"title"`
	Name       string  `json:"name,omitempty"`
	Score      float64 `json:"score"`
	NewCreator bool    `json:"new_creator,omitempty"`
	// Artwork is the artwork variant the bandit chose for the title.
	Artwork string `json:"artwork,omitempty"`
}

func (c *RecommendConfig) problems(at string, add func(field, format string, args ...any)) {
	if len(c.Rows) == 0 {
		add(at+".rows", "a recommend endpoint needs at least one row (types: %s)", strings.Join(RowTypes, ", "))
	}
	seen := map[string]bool{}
	for i, r := range c.Rows {
		f := fmt.Sprintf("%s.rows[%d]", at, i)
		if !slices.Contains(RowTypes, r.Type) {
			add(f+".type", "%q: use one of %s", r.Type, strings.Join(RowTypes, ", "))
		} else if seen[r.Type] {
			add(f+".type", "%q twice: a page has one row of each type", r.Type)
		}
		seen[r.Type] = true
		if r.Items < 0 || r.Items > 100 {
			add(f+".items", "%d: between 1 and 100", r.Items)
		}
		if r.Within < 0 {
			add(f+".within", "must be positive")
		} else if r.Within > 0 && r.Type != RowNew {
			add(f+".within", "only a row of type new has within")
		}
	}
	if p := c.Personalize; p != nil {
		if !flow.ValidName(p.Model) {
			add(at+".personalize.model", "%q: the registry model whose production version is a bandit policy", p.Model)
		}
		if p.Artworks < 0 || p.Artworks > 20 {
			add(at+".personalize.artworks", "%d: between 0 (no artwork decisions) and 20", p.Artworks)
		}
		if p.ArtworkItems < 0 || p.ArtworkItems > 100 {
			add(at+".personalize.artwork_items", "%d: between 1 and 100", p.ArtworkItems)
		}
		if len(c.Rows) > bandit.MaxRows {
			add(at+".rows", "%d rows: a personalized page orders at most %d", len(c.Rows), bandit.MaxRows)
		}
	}
	if c.AnchorFeature != "" && !flow.ValidName(c.AnchorFeature) {
		add(at+".anchor_feature", "%q is not a feature name", c.AnchorFeature)
	}
	if d := c.Rerank.Diversity; d < 0 || d >= 1 || math.IsNaN(d) {
		add(at+".rerank.diversity", "%g: in [0, 1)", d)
	}
	if s := c.Rerank.NewCreatorShare; s < 0 || s > 1 || math.IsNaN(s) {
		add(at+".rerank.new_creator_share", "%g: in [0, 1]", s)
	}
}

// ---- the model behind a recommend endpoint

// recModel is a loaded recommendation model file. On a predict endpoint
// it answers the member's top 10; a recommend endpoint wraps it in a
// rowsModel. What rows need beyond the model (genre sets as bit masks,
// titles by release, each market's popularity order and availability, the
// titles most like each title) is derived once per model, when it loads,
// not per request: a request reads it without a lock.
type recModel struct {
	r      *rec.Recommender
	titles []rec.Title
	genres []uint64 // per title, a bit per genre (genres past 64 share bits)
	isNew  []bool   // per title: by a new creator
	// byRelease is every title, most recent release first; newByRelease
	// the new creators' titles alike: a row of recent releases selects
	// among a prefix of them, not among the whole catalog.
	byRelease, newByRelease []int32

	// markets are the views of each market the model knows, of "" (no
	// market) and of unknownMarket, made at load and only read after.
	markets map[string]*marketView

	// table is every title's neighbours (titles most like it), built once
	// before the model first serves a recommend endpoint (buildNeighbours);
	// titles past its budget are worked out when first asked and kept in
	// nbrs.
	table   atomic.Pointer[[][]int32]
	buildMu sync.Mutex
	// buildErr is a build that panicked: the same model panics the same
	// way, so it is not tried again at every refresh (requests work out
	// a title's neighbours when asked, and fall back if that panics
	// too); panicLog logs it once.
	buildErr error
	panicLog sync.Once
	nbrMu    sync.RWMutex
	nbrs     map[int32][]int32

	scorePool sync.Pool // *[]float32, one score per title
	pages     sync.Pool // *page
}

// marketView is what a page in one market reads of the model.
type marketView struct {
	// byPopularity is the market's titles by popularity, most played
	// first (the global order for "" and for a market the model does not
	// know, as rec.Popularity gives them).
	byPopularity []int32
	// hidden is, per title, whether it may not be shown in the market.
	hidden []bool
}

// unknownMarket keys the view of every market the model does not know:
// they all share one popularity order (the global one) and one
// availability (only titles without a market list), so that a request's
// market attribute cannot grow what the model keeps.
const unknownMarket = "\x00unknown"

func loadRec(b []byte) (*recModel, error) {
	r, err := rec.Load(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	m := &recModel{r: r, titles: r.Titles(), nbrs: map[int32][]int32{}, markets: map[string]*marketView{}}
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
	m.byRelease = make([]int32, len(m.titles))
	for i := range m.byRelease {
		m.byRelease[i] = int32(i)
	}
	slices.SortStableFunc(m.byRelease, func(a, b int32) int { return cmp.Compare(m.titles[b].Released, m.titles[a].Released) })
	for _, t := range m.byRelease {
		if m.isNew[t] {
			m.newByRelease = append(m.newByRelease, t)
		}
	}
	orders := map[string][]int32{}
	order := func(market string) []int32 {
		if o, ok := orders[market]; ok {
			return o
		}
		pop := r.Popularity(market)
		o := rec.TopK(pop, nil, len(pop))
		orders[market] = o
		return o
	}
	for _, mk := range append([]string{"", unknownMarket}, r.Markets()...) {
		v := &marketView{hidden: make([]bool, len(m.titles))}
		if mk == unknownMarket {
			v.byPopularity = order("")
		} else {
			v.byPopularity = order(mk)
		}
		for i := range m.titles {
			v.hidden[i] = !m.titles[i].AvailableIn(mk)
		}
		m.markets[mk] = v
	}
	return m, nil
}

// market is the view of a market: its own when the model knows it.
func (m *recModel) market(name string) *marketView {
	if v, ok := m.markets[name]; ok {
		return v
	}
	return m.markets[unknownMarket]
}

// Predict answers the member's top 10 in the market of attribute market
// (default the member's own).
func (m *recModel) Predict(_ context.Context, in Input) (Output, error) {
	market, _ := in.Attributes["market"].(string)
	items := m.r.Recommend(in.Key, rec.Options{N: 10, Market: market})
	return Output{Prediction: items, Confidence: m.r.Confidence(in.Key)}, nil
}

func (m *recModel) scores() *[]float32 {
	if p, ok := m.scorePool.Get().(*[]float32); ok {
		return p
	}
	s := make([]float32, len(m.titles))
	return &s
}

// neighbourPairs bounds the work of a neighbour table: anchors × titles
// likeness scores (a catalog of 10,000 titles is tabled whole, in about 1
// s of CPU; a larger one for its most played titles).
const neighbourPairs = 100_000_000

// neighbourDepth is how many neighbours a title keeps.
const neighbourDepth = 200

// buildNeighbours tables the neighbours of the most played titles within
// neighbourPairs, once per model, on every core: "Because You Watched"
// then reads its row's candidates instead of scoring the catalog against
// each new anchor title in a request. A build cut short by ctx is
// dropped; the next call starts again.
func (m *recModel) buildNeighbours(ctx context.Context) error {
	m.buildMu.Lock()
	defer m.buildMu.Unlock()
	if m.table.Load() != nil {
		return nil
	}
	if m.buildErr != nil {
		return m.buildErr
	}
	anchors := m.market("").byPopularity
	if n := len(m.titles); n > 0 {
		anchors = anchors[:min(len(anchors), max(1, neighbourPairs/n))]
	}
	lists, err := m.r.SimilarIndexes(ctx, anchors, neighbourDepth, runtime.GOMAXPROCS(0))
	if pe := (*rec.PanicError)(nil); errors.As(err, &pe) {
		m.buildErr = fmt.Errorf("neighbour table: %w", err)
		return m.buildErr
	}
	if err != nil {
		return err
	}
	tab := make([][]int32, len(m.titles))
	for i, t := range anchors {
		tab[t] = lists[i]
	}
	m.table.Store(&tab)
	return nil
}

// neighbours is the titles most like title t (rec's Similar: the model's
// own neighbours, factor cosine or co-plays): from the table, else worked
// out once per title.
func (m *recModel) neighbours(t int) []int32 {
	if tab := m.table.Load(); tab != nil {
		if nb := (*tab)[t]; nb != nil {
			return nb
		}
	}
	m.nbrMu.RLock()
	nb, ok := m.nbrs[int32(t)]
	m.nbrMu.RUnlock()
	if ok {
		return nb
	}
	items := m.r.Similar(m.titles[t].ID, neighbourDepth, "")
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

// released is the titles (of all, or of new creators) released at or
// after since, most recent first.
func (m *recModel) released(since int64, newOnly bool) []int32 {
	ts := m.byRelease
	if newOnly {
		ts = m.newByRelease
	}
	return ts[:sort.Search(len(ts), func(i int) bool { return m.titles[ts[i]].Released < since })]
}

// jaccard is the genre Jaccard similarity of two titles.
func (m *recModel) jaccard(a, b int32) float64 {
	ga, gb := m.genres[a], m.genres[b]
	u := bits.OnesCount64(ga | gb)
	if u == 0 {
		return 0
	}
	return float64(bits.OnesCount64(ga&gb)) / float64(u)
}

// rowsModel is a recommendation model serving one recommend endpoint's
// page. fallback marks the deterministic popularity page (its reasons say
// so).
type rowsModel struct {
	m        *recModel
	cfg      RecommendConfig
	fallback bool
	policy   *bandit.Policy // nil: the rows keep their order
	now      func() time.Time
	// gate is the endpoint's min_confidence: a page the gate would refuse
	// is not built (the fallback's page is what the member gets).
	gate float64
}

// cannotServe stands for a version its endpoint cannot serve (a page
// from a model that is not a recommendation model, say): every request to
// it fails, saying why, and the endpoint's fallback answers.
type cannotServe struct{ msg string }

func (c cannotServe) Predict(context.Context, Input) (Output, error) {
	return Output{}, errors.New(c.msg)
}

// forEndpoint is v as endpoint spec serves it: itself on a predict
// endpoint, its page on a recommend endpoint (personalized by policy,
// when there is one, except on the fallback).
func (s *Service) forEndpoint(spec Endpoint, v *version, fallback bool, policy *bandit.Policy) *version {
	if v == nil || spec.Kind != KindRecommend || spec.Recommend == nil {
		return v
	}
	if rm, ok := v.m.(*recModel); ok {
		if fallback {
			policy = nil
		}
		gate := spec.MinConfidence
		if fallback {
			gate = 0
		}
		return &version{v: v.v, m: &rowsModel{m: rm, cfg: *spec.Recommend, fallback: fallback, policy: policy, now: s.d.Now, gate: gate}, builtin: true}
	}
	return &version{v: v.v, m: cannotServe{fmt.Sprintf("model %s version %d is not a recommendation model file (baton rec train makes one): a recommend endpoint cannot serve it", v.v.Model, v.v.Version)}, builtin: true}
}

// warm builds what v's pages read before v first serves them: the
// neighbour table, when the page has a "Because You Watched" row. A
// build that panicked is logged once, with the stack.
func (s *Service) warm(ctx context.Context, v *version) error {
	if v == nil {
		return nil
	}
	rm, ok := v.m.(*rowsModel)
	if !ok || !slices.ContainsFunc(rm.cfg.Rows, func(r RowConfig) bool { return r.Type == RowBecauseYouWatched }) {
		return nil
	}
	err := rm.m.buildNeighbours(ctx)
	if pe := (*rec.PanicError)(nil); errors.As(err, &pe) {
		rm.m.panicLog.Do(func() {
			s.d.Log.Error("model panicked building its neighbour table; requests work out neighbours when asked", "model", v.v.Model,
				"version", v.v.Version, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		})
	}
	return err
}

const defaultNewWithin = 30 * 24 * time.Hour

// page is one request's working state, pooled per model: its buffers are
// a catalog's worth each, and a request would otherwise leave them to the
// collector.
type page struct {
	m      *recModel
	scores []float32 // read only: may be the model's popularity row
	// popMarket is, when scores are a market's popularity, that market:
	// its order is then the member's ranking as it stands.
	popMarket string
	popular   bool
	market    string
	view      *marketView
	taken     []bool  // titles already on the page, seen, or not available
	ranked    []int32 // the member's best titles not seen and available (pick)
	// marks and mark make sets of titles without a map: a title is in the
	// current set when marks[t] == mark.
	marks []uint32
	mark  uint32
	// Re-ranking's buffers, reused row after row.
	rel, maxSim []float64
	used        []bool
}

func (m *recModel) page() *page {
	if p, ok := m.pages.Get().(*page); ok {
		return p
	}
	return &page{m: m, taken: make([]bool, len(m.titles)), marks: make([]uint32, len(m.titles))}
}

func (m *recModel) putPage(p *page) {
	p.scores, p.view, p.ranked = nil, nil, p.ranked[:0]
	m.pages.Put(p)
}

// newSet starts an empty set of titles (see marks).
func (p *page) newSet() uint32 {
	p.mark++
	if p.mark == 0 {
		clear(p.marks)
		p.mark = 1
	}
	return p.mark
}

// Predict builds the member's page. Its confidence is the model's for the
// member (a popularity model is always sure).
func (rm *rowsModel) Predict(ctx context.Context, in Input) (Output, error) {
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
	defer m.scorePool.Put(sp)
	p := m.page()
	defer m.putPage(p)
	p.scores, p.popMarket, p.popular = m.r.PageScores(in.Key, market, *sp)
	p.market, p.view = market, m.market(market)
	copy(p.taken, p.view.hidden)
	for _, t := range m.r.Seen(in.Key) {
		p.taken[t] = true
	}
	out := Page{Member: in.Key, Market: market, Rows: make([]PageRow, 0, len(rm.cfg.Rows)), src: m}
	for _, rc := range rm.cfg.Rows {
		if err := ctx.Err(); err != nil {
			return Output{}, err
		}
		row, ok := rm.row(p, rc, in)
		if ok {
			out.Rows = append(out.Rows, row)
		}
	}
	if rm.policy != nil && len(out.Rows) > 0 {
		if err := rm.personalize(&out, in, market); err != nil {
			return Output{}, err
		}
	}
	return Output{Prediction: out, Confidence: conf}, nil
}

// personalize lets the bandit order the page's rows and choose the
// artwork of the first titles of each row, in the context of the
// request's features and attributes (and the market).
func (rm *rowsModel) personalize(pg *Page, in Input, market string) error {
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	ctx := targetingAttrs(in.Features, in.Attributes)
	if _, ok := ctx["market"]; !ok && market != "" {
		ctx = maps.Clone(ctx)
		if ctx == nil {
			ctx = map[string]any{}
		}
		ctx["market"] = market
	}
	req := bandit.PageRequest{ID: "p-" + hex.EncodeToString(idb[:]), At: rm.now(), Context: ctx}
	for _, r := range pg.Rows {
		req.Rows = append(req.Rows, r.ID)
	}
	if k := rm.cfg.Personalize.Artworks; k > 0 {
		per := rm.cfg.Personalize.ArtworkItems
		if per == 0 {
			per = 3
		}
		for _, r := range pg.Rows {
			for _, it := range r.Items[:min(per, len(r.Items))] {
				arts := make([]string, k)
				for v := range arts {
					arts[v] = bandit.ArtworkID(it.Title, v)
				}
				req.Titles = append(req.Titles, bandit.TitleArtwork{Title: it.Title, Artworks: arts})
			}
		}
		// A title in two rows (the chart repeats) is decided once.
		req.Titles = slices.CompactFunc(sortedTitles(req.Titles), func(a, b bandit.TitleArtwork) bool { return a.Title == b.Title })
	}
	dec, err := rm.policy.DecidePage(req)
	if err != nil {
		return fmt.Errorf("personalization: %w", err)
	}
	if dec.Rows != nil {
		byID := map[string]PageRow{}
		for _, r := range pg.Rows {
			byID[r.ID] = r
		}
		rows := make([]PageRow, 0, len(pg.Rows))
		for _, id := range dec.Rows.Chosen {
			rows = append(rows, byID[id])
		}
		pg.Rows = rows
	}
	art := map[string]string{}
	for _, d := range dec.Artwork {
		if len(d.Chosen) == 1 {
			art[d.Title] = d.Chosen[0]
		}
	}
	for i := range pg.Rows {
		for j := range pg.Rows[i].Items {
			pg.Rows[i].Items[j].Artwork = art[pg.Rows[i].Items[j].Title]
		}
	}
	pg.Decision = &PageDecision{ID: req.ID, Policy: rm.policy.ID()}
	if dec.Rows != nil {
		pg.Decision.Propensity = dec.Rows.Propensity
	}
	pg.decisions = &dec
	return nil
}

func sortedTitles(ts []bandit.TitleArtwork) []bandit.TitleArtwork {
	slices.SortStableFunc(ts, func(a, b bandit.TitleArtwork) int { return strings.Compare(a.Title, b.Title) })
	return ts
}

func (rm *rowsModel) row(p *page, rc RowConfig, in Input) (PageRow, bool) {
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
		cands = p.pick(3*n, nil, nil)
		cands = p.pick(n, func(t int32) bool { return m.isNew[t] }, cands)
		if rm.fallback {
			row.Reason = "the most played titles in " + where + " (popularity: the model could not serve you)"
		} else {
			row.Reason = "ranked for you by the " + m.r.Kind() + " model from what you played"
		}
	case RowBecauseYouWatched:
		anchor, ok := rm.anchor(in)
		if !ok {
			return PageRow{}, false
		}
		ai, _ := m.r.TitleIndex(anchor)
		row.Title = strings.ReplaceAll(orDefault(row.Title, "Because You Watched {title}"), "{title}", m.titles[ai].Name)
		row.Reason = "members who watched " + m.titles[ai].Name + " also watched these"
		if k := m.r.Kind(); k == rec.KindALS || k == rec.KindMultiTask {
			row.Reason = "the titles most like " + m.titles[ai].Name + " in the tastes the " + k + " model learned"
		}
		for _, t := range m.neighbours(ai) {
			if !p.taken[t] && t != int32(ai) {
				cands = append(cands, t)
			}
		}
	case RowTrending:
		row.Title = orDefault(row.Title, "Trending Now")
		// The most played of the market, in the member's order.
		for _, t := range p.view.byPopularity {
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
		for _, t := range p.view.byPopularity {
			if !p.view.hidden[t] {
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
		// selection over every recent title's score.
		recent := func(t int32) bool { return m.titles[t].Released >= since }
		cands = p.pick(3*n, recent, nil)
		if len(cands) < n {
			cands = rec.TopKOf(p.scores, m.released(since, false), p.taken, 3*n, cands[:0])
			cands = rec.TopKOf(p.scores, m.released(since, true), p.taken, n, cands)
		} else {
			cands = p.pick(n, func(t int32) bool { return recent(t) && m.isNew[t] }, cands)
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

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// anchor is the title of "Because You Watched": the anchor feature's
// value when it names a catalog title, else the member's most played.
func (rm *rowsModel) anchor(in Input) (string, bool) {
	if f := rm.cfg.AnchorFeature; f != "" {
		if s, ok := in.Features[f].(string); ok {
			if _, known := rm.m.r.TitleIndex(s); known {
				return s, true
			}
		}
	}
	return rm.m.r.MostPlayed(in.Key)
}

// rankedDepth is how many of a member's best titles the personal rows
// choose from: one selection over every title's score per page, then each
// row filters that list, instead of a selection per row (a tenth of the
// time of a page over 10,000 titles).
const rankedDepth = 200

// pick appends to dst up to k of the member's best titles not taken (and
// for which ok holds), best first.
func (p *page) pick(k int, ok func(t int32) bool, dst []int32) []int32 {
	if len(p.ranked) == 0 {
		p.rank()
	}
	dst = slices.Grow(dst, k)
	found := 0
	for _, t := range p.ranked {
		if found == k {
			break
		}
		if !p.taken[t] && (ok == nil || ok(t)) {
			dst = append(dst, t)
			found++
		}
	}
	return dst
}

// rank makes the member's ranking: the best rankedDepth titles not taken
// now. Scores that are a market's popularity are ranked by the order the
// model keeps for it, with no selection over the catalog.
func (p *page) rank() {
	if !p.popular {
		p.ranked = rec.TopKOf(p.scores, nil, p.taken, rankedDepth, p.ranked[:0])
		return
	}
	p.ranked = p.ranked[:0]
	for _, t := range p.m.market(p.popMarket).byPopularity {
		if len(p.ranked) == rankedDepth {
			break
		}
		if !p.taken[t] {
			p.ranked = append(p.ranked, t)
		}
	}
}

func (p *page) sortByScore(ts []int32) {
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
func (rm *rowsModel) rerank(p *page, cands []int32, n int) []int32 {
	m := p.m
	cands = p.dedupe(cands)
	d := rm.cfg.Rerank.Diversity
	pool := cands[:min(len(cands), max(3*n, n+20))]
	var picked []int32
	if d == 0 {
		picked = slices.Clone(pool[:min(n, len(pool))])
	} else {
		// Relevance is the rank in the row's order, scaled to [0, 1]:
		// scores of different rows' sources are not comparable, ranks are.
		rel, maxSim, used := p.scratch(len(pool))
		for i := range pool {
			rel[i] = 1 - float64(i)/float64(len(pool))
		}
		picked = make([]int32, 0, min(n, len(pool)))
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
	in := p.newSet()
	for _, t := range picked {
		p.marks[t] = in
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
		if p.marks[t] == in || !m.isNew[t] {
			continue
		}
		for j >= 0 && m.isNew[picked[j]] {
			j--
		}
		if j < 0 {
			break
		}
		picked[j] = t
		p.marks[t] = in
		have++
		j--
	}
	return picked
}

// scratch is re-ranking's buffers for a pool of n titles, zeroed.
func (p *page) scratch(n int) (rel, maxSim []float64, used []bool) {
	if cap(p.rel) < n {
		p.rel, p.maxSim, p.used = make([]float64, n), make([]float64, n), make([]bool, n)
	}
	rel, maxSim, used = p.rel[:n], p.maxSim[:n], p.used[:n]
	clear(maxSim)
	clear(used)
	return rel, maxSim, used
}

// dedupe keeps the first of each title in ts, in place.
func (p *page) dedupe(ts []int32) []int32 {
	seen := p.newSet()
	out := ts[:0]
	for _, t := range ts {
		if p.marks[t] != seen {
			p.marks[t] = seen
			out = append(out, t)
		}
	}
	return out
}

// rowStats is a row's intra-list diversity (1 - mean pairwise genre
// Jaccard; 0 for fewer than two titles) and new creators' share.
func (m *recModel) rowStats(ts []int32) (diversity, newShare float64) {
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

func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return v
}
