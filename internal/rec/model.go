package rec

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/baton-ml/baton/internal/fault"
)

// The model kinds.
const (
	KindPopularity = "popularity"
	KindKNN        = "knn"
	KindALS        = "als"
	KindPPR        = "ppr"
	KindBlend      = "blend"
	KindMultiTask  = "multitask"
)

// Kinds lists every kind Train knows.
var Kinds = []string{KindPopularity, KindKNN, KindALS, KindPPR, KindBlend, KindMultiTask}

// Item is one recommended title.
type Item struct {
	Title string  `json:"title"`
	Score float64 `json:"score"`
}

// Options shape one answer.
type Options struct {
	N           int      // how many; 0 means 10
	Market      string   // the market to filter by; "" is the member's own (none for an unknown member)
	IncludeSeen bool     // keep titles the member already played
	Exclude     []string // titles never to return (already on the page, say)
}

// Model is what every recommendation model answers. Unknown members get
// no error: they are answered from popularity in the market, with
// confidence 0, so a serving gate can fall back for them.
type Model interface {
	Kind() string
	// Recommend is the member's top N titles, best first.
	Recommend(member string, o Options) []Item
	// Score scores the given titles for the member (NaN for a title not in
	// the catalog), higher is better; comparable within one member.
	Score(member string, titles []string) []float64
	// Confidence in [0, 1] is how much the model knows the member.
	Confidence(member string) float64
}

// Recommender is a trained model of any kind: what Train returns and
// Load reads. It is safe for concurrent use.
type Recommender struct {
	b *base
	s scorer

	pool sync.Pool // *[]float32 of one score per title

	// The norms of the title factors, for Similar's cosines, made once.
	normsOnce sync.Once
	norms     []float32
}

var _ Model = (*Recommender)(nil)

// scorer is a kind's own part of a model: scores of every title for a
// known member.
type scorer interface {
	scores(b *base, u int, dst []float32)
}

// batchScorer scores many members at once (a matrix product is faster
// than one row at a time) into dst, one row of scores per member.
type batchScorer interface {
	scoreBatch(b *base, us []int, dst []float32)
}

// base is what every kind carries: the catalog metadata serving needs,
// the members, their training history and popularity per market.
type base struct {
	Kind    string
	Titles  []Title
	Markets []string
	Members []Member
	Hist    history
	// Pop[m][t] is title t's popularity share in market m (its share
	// among all members' plays at index len(Markets)), plus a thousandth
	// of the global share to order titles a market never played.
	Pop    [][]float32
	Count  []float32 // plays per title in the training data
	Params map[string]string
	// ParamList is Params as a file has it (fileBase); Load moves it
	// into Params.
	ParamList [][2]string
	Until     int64 // the last training interaction's time

	titleIdx  map[string]int32
	memberIdx map[string]int32
	marketIdx map[string]int32
	avail     [][]bool // [market][title]

	// The history transposed, for co-plays (buildPlayers), made on first use.
	playersOnce sync.Once
	playersPtr  []int64
	players     []int32
}

func newBase(kind string, d *Dataset, params map[string]string) *base {
	b := &base{Kind: kind, Titles: d.Titles, Markets: d.Markets, Members: d.Members, Params: params}
	b.Hist = buildHistory(&d.Inter, len(d.Members))
	for _, ts := range d.Inter.TS {
		b.Until = max(b.Until, ts)
	}
	b.index()
	return b
}

// index builds what is derived from the stored fields (after Load too).
func (b *base) index() {
	b.titleIdx = make(map[string]int32, len(b.Titles))
	for i, t := range b.Titles {
		b.titleIdx[t.ID] = int32(i)
	}
	b.memberIdx = make(map[string]int32, len(b.Members))
	for i, m := range b.Members {
		b.memberIdx[m.ID] = int32(i)
	}
	b.marketIdx = make(map[string]int32, len(b.Markets))
	b.avail = make([][]bool, len(b.Markets))
	for i, m := range b.Markets {
		b.marketIdx[m] = int32(i)
		b.avail[i] = make([]bool, len(b.Titles))
		for t := range b.Titles {
			b.avail[i][t] = b.Titles[t].AvailableIn(m)
		}
	}
}

func (b *base) member(id string) int {
	if i, ok := b.memberIdx[id]; ok {
		return int(i)
	}
	return -1
}

// marketOf is the market index to filter by: the option, else the
// member's; -1 is no filter (and the global popularity row).
func (b *base) marketOf(u int, market string) int {
	if market == "" && u >= 0 {
		market = b.Members[u].Market
	}
	if i, ok := b.marketIdx[market]; ok {
		return int(i)
	}
	return -1
}

func (b *base) popRow(mk int) []float32 {
	if mk < 0 {
		return b.Pop[len(b.Markets)]
	}
	return b.Pop[mk]
}

// Kind is the model's kind.
func (r *Recommender) Kind() string { return r.b.Kind }

// Titles is the catalog the model was trained with.
func (r *Recommender) Titles() []Title { return r.b.Titles }

// Title is a title's metadata, and false when the catalog lacks it.
func (r *Recommender) Title(id string) (Title, bool) {
	i, ok := r.b.titleIdx[id]
	if !ok {
		return Title{}, false
	}
	return r.b.Titles[i], true
}

// Markets is every market the training data named.
func (r *Recommender) Markets() []string { return r.b.Markets }

// Members is the number of members the model knows.
func (r *Recommender) Members() int { return len(r.b.Members) }

// MemberMarket is a known member's market ("" and false when unknown).
func (r *Recommender) MemberMarket(member string) (string, bool) {
	u := r.b.member(member)
	if u < 0 {
		return "", false
	}
	return r.b.Members[u].Market, true
}

// History is the titles the member played in the training data.
func (r *Recommender) History(member string) []string {
	u := r.b.member(member)
	if u < 0 {
		return nil
	}
	row := r.b.Hist.row(u)
	out := make([]string, len(row))
	for i, t := range row {
		out[i] = r.b.Titles[t].ID
	}
	return out
}

// Popularity is the market's popularity share per title, in catalog
// order ("" or an unknown market: across all markets).
func (r *Recommender) Popularity(market string) []float32 {
	return r.b.popRow(r.b.marketOf(-1, market))
}

// Params are the training parameters, defaults included.
func (r *Recommender) Params() map[string]string { return r.b.Params }

// Until is the time of the last interaction the model was trained on.
func (r *Recommender) Until() int64 { return r.b.Until }

// Confidence is h/(h+5) for a member with h distinct titles in the
// training data (1 for popularity, which needs no history), 0 unknown.
func (r *Recommender) Confidence(member string) float64 {
	u := r.b.member(member)
	if u < 0 {
		return 0
	}
	if r.b.Kind == KindPopularity {
		return 1
	}
	h := float64(r.b.Hist.Ptr[u+1] - r.b.Hist.Ptr[u])
	return h / (h + 5)
}

func (r *Recommender) buf() *[]float32 {
	if p, ok := r.pool.Get().(*[]float32); ok {
		return p
	}
	s := make([]float32, len(r.b.Titles))
	return &s
}

// scoresFor fills dst with every title's score for u: popularity in the
// market for an unknown member, and for a member without history in the
// training data (a personal model has nothing to go on: ALS's factors
// are all but zero, a ranking of noise).
func (r *Recommender) scoresFor(u, mk int, dst []float32) {
	if r.b.cold(u) {
		copy(dst, r.b.popRow(mk))
		return
	}
	r.s.scores(r.b, u, dst)
}

// cold says the model knows nothing of u's tastes.
func (b *base) cold(u int) bool { return u < 0 || b.Hist.Ptr[u] == b.Hist.Ptr[u+1] }

// Score scores titles for member.
func (r *Recommender) Score(member string, titles []string) []float64 {
	u := r.b.member(member)
	p := r.buf()
	defer r.pool.Put(p)
	r.scoresFor(u, r.b.marketOf(u, ""), *p)
	out := make([]float64, len(titles))
	for i, id := range titles {
		t, ok := r.b.titleIdx[id]
		if !ok {
			out[i] = math.NaN()
			continue
		}
		out[i] = float64((*p)[t])
	}
	return out
}

// Recommend is member's top N.
func (r *Recommender) Recommend(member string, o Options) []Item {
	u := r.b.member(member)
	mk := r.b.marketOf(u, o.Market)
	p := r.buf()
	defer r.pool.Put(p)
	r.scoresFor(u, mk, *p)
	return r.top(u, mk, *p, o)
}

// top selects the best N of scores, masking seen, unavailable and
// excluded titles; ties go to the lower title index so answers are
// deterministic.
func (r *Recommender) top(u, mk int, scores []float32, o Options) []Item {
	n := o.N
	if n <= 0 {
		n = 10
	}
	neg := float32(math.Inf(-1))
	if u >= 0 && !o.IncludeSeen {
		for _, t := range r.b.Hist.row(u) {
			scores[t] = neg
		}
	}
	for _, id := range o.Exclude {
		if t, ok := r.b.titleIdx[id]; ok {
			scores[t] = neg
		}
	}
	var avail []bool
	if mk >= 0 {
		avail = r.b.avail[mk]
	}
	idx := topK(scores, avail, n)
	out := make([]Item, len(idx))
	for i, t := range idx {
		out[i] = Item{Title: r.b.Titles[t].ID, Score: float64(scores[t])}
	}
	return out
}

// Train trains a model of kind on d with params (NAME=VALUE; each kind
// documents its own and refuses unknown ones).
func Train(ctx context.Context, kind string, d *Dataset, params map[string]string) (*Recommender, error) {
	if !slices.Contains(Kinds, kind) {
		return nil, fault.Invalidf("kind", "unknown model kind %q (kinds: %s)", kind, strings.Join(Kinds, ", "))
	}
	ps := newParams(params)
	b := newBase(kind, d, nil)
	halfLife := ps.float("half_life_days", 0, nonNeg, "a number of days ≥ 0 (0: no decay)")
	b.Pop, b.Count = popularity(d, halfLife)
	var s scorer
	var err error
	switch kind {
	case KindPopularity:
		s = popScorer{}
	case KindKNN:
		s, err = trainKNN(ctx, b, ps)
	case KindALS:
		s, err = trainALS(ctx, b, ps)
	case KindPPR:
		s, err = trainPPR(b, ps)
	case KindMultiTask:
		s, err = trainMultiTask(ctx, b, ps)
	case KindBlend:
		s, err = trainBlend(ctx, b, d, ps, halfLife)
	default:
		return nil, fault.Invalidf("kind", "unknown model kind %q (kinds: %s)", kind, strings.Join(Kinds, ", "))
	}
	if err == nil {
		err = ps.done()
	}
	if err != nil {
		return nil, err
	}
	b.Params = ps.effective
	return &Recommender{b: b, s: s}, nil
}

// popScorer answers popularity in the member's market.
type popScorer struct{}

func (popScorer) scores(b *base, u int, dst []float32) {
	copy(dst, b.popRow(b.marketOf(u, "")))
}

// popularity is the play share per market (rows in Dataset.Markets
// order, then the global row) with an optional half-life in days counted
// back from the last interaction; an interaction without a market counts
// in its member's.
func popularity(d *Dataset, halfLifeDays float64) (pop [][]float32, count []float32) {
	in := &d.Inter
	var last int64
	for _, ts := range in.TS {
		last = max(last, ts)
	}
	nm := len(d.Markets)
	acc := make([][]float64, nm+1)
	for i := range acc {
		acc[i] = make([]float64, len(d.Titles))
	}
	count = make([]float32, len(d.Titles))
	for r := range in.Member {
		if in.Event[r] == Complete {
			continue
		}
		w := float64(in.Weight[r])
		if halfLifeDays > 0 {
			w *= math.Exp2(-float64(last-in.TS[r]) / (halfLifeDays * 86400))
		}
		t := in.Title[r]
		count[t]++
		mk := int(in.Market[r])
		if mk < 0 {
			if name := d.Members[in.Member[r]].Market; name != "" {
				mk = int(d.marketIdx[name])
			}
		}
		if mk >= 0 {
			acc[mk][t] += w
		}
		acc[nm][t] += w
	}
	share := func(row []float64) {
		var s float64
		for _, v := range row {
			s += v
		}
		if s > 0 {
			for i := range row {
				row[i] /= s
			}
		}
	}
	for _, row := range acc {
		share(row)
	}
	pop = make([][]float32, nm+1)
	for m, row := range acc {
		pop[m] = make([]float32, len(row))
		for t, v := range row {
			if m < nm {
				v += 1e-3 * acc[nm][t]
			}
			pop[m][t] = float32(v)
		}
	}
	return pop, count
}

// params reads NAME=VALUE training parameters, recording the values used
// (defaults included) and refusing names no trainer asked for.
type params struct {
	given     map[string]string
	effective map[string]string
	err       error
}

func newParams(p map[string]string) *params {
	return &params{given: p, effective: map[string]string{}}
}

func nonNeg(v float64) bool   { return v >= 0 }
func positive(v float64) bool { return v > 0 }

func (ps *params) float(name string, def float64, ok func(float64) bool, rule string) float64 {
	v := def
	if s, given := ps.given[name]; given {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || !ok(f) {
			if ps.err == nil {
				ps.err = fault.Invalidf("param "+name, "%q: must be %s", s, rule)
			}
			return def
		}
		v = f
	}
	ps.effective[name] = strconv.FormatFloat(v, 'g', -1, 64)
	return v
}

func (ps *params) int(name string, def, lo, hi int) int {
	v := def
	if s, given := ps.given[name]; given {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			if ps.err == nil {
				ps.err = fault.Invalidf("param "+name, "%q: must be an integer from %d to %d", s, lo, hi)
			}
			return def
		}
		v = n
	}
	ps.effective[name] = strconv.Itoa(v)
	return v
}

func (ps *params) str(name, def string, allowed ...string) string {
	v := def
	if s, given := ps.given[name]; given {
		if !slices.Contains(allowed, s) {
			if ps.err == nil {
				ps.err = fault.Invalidf("param "+name, "%q: must be one of %s", s, strings.Join(allowed, ", "))
			}
			return def
		}
		v = s
	}
	ps.effective[name] = v
	return v
}

func (ps *params) done() error {
	if ps.err != nil {
		return ps.err
	}
	var unknown []string
	for k := range ps.given {
		if _, ok := ps.effective[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := make([]string, 0, len(ps.effective))
		for k := range ps.effective {
			known = append(known, k)
		}
		sort.Strings(known)
		return fault.Invalidf("param "+unknown[0], "unknown parameter (this kind takes: %s)", strings.Join(known, ", "))
	}
	return nil
}

// sub is the parameters under prefix ("als." for als.factors), for a
// model trained inside another; merge records what it used.
func (ps *params) sub(prefix string) *params {
	given := map[string]string{}
	for k, v := range ps.given {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			given[rest] = v
		}
	}
	return newParams(given)
}

func (ps *params) merge(prefix string, child *params) {
	for k, v := range child.effective {
		ps.effective[prefix+k] = v
	}
	if ps.err == nil && child.err != nil {
		var fe *fault.Error
		if errors.As(child.err, &fe) {
			ps.err = &fault.Error{Kind: fe.Kind, Field: strings.Replace(fe.Field, "param ", "param "+prefix, 1), Err: fe.Err}
		} else {
			ps.err = child.err
		}
	}
}
