package bandit

import (
	"fmt"
	"time"
)

// Policy is a trained (or empty) LinUCB policy with ε-exploration. It is
// not changed after it is made: decisions may run concurrently.
type Policy struct {
	params Params
	fz     *Featurizer
	arms   models
	id     string
	info   TrainInfo
}

// TrainInfo is what a policy was trained on.
type TrainInfo struct {
	Records int       `json:"records"`
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
}

// NewPolicy is a policy with no data: every arm scores the prior's bonus
// and the greedy choice is the first arm given. With Epsilon 1 it is the
// uniform logging policy.
func NewPolicy(fz *Featurizer, params Params) (*Policy, error) {
	if err := params.check(); err != nil {
		return nil, err
	}
	p := &Policy{params: params, fz: fz, arms: models{}}
	var err error
	if p.id, err = p.computeID(); err != nil {
		return nil, err
	}
	return p, nil
}

// ID is the policy's version: a digest of its settings, encoding and
// models, logged with every decision it makes.
func (p *Policy) ID() string { return p.id }

// Params are the policy's settings.
func (p *Policy) Params() Params { return p.params }

// Featurizer is the policy's context encoding.
func (p *Policy) Featurizer() *Featurizer { return p.fz }

// Trained says what the policy was trained on.
func (p *Policy) Trained() TrainInfo { return p.info }

// Request is one decision to make.
type Request struct {
	ID      string // unique per decision: it seeds the random draw and joins the reward
	At      time.Time
	Context map[string]any
	Kind    Kind
	Title   string   // the title, for Artwork
	Arms    []string // row ids (RowOrder) or the title's artwork ids (Artwork)
}

// Decide makes one decision and returns its record, with the exact
// probability of what was chosen. The record shares req's Context and
// Arms.
func (p *Policy) Decide(req Request) (Decision, error) {
	if req.ID == "" {
		return Decision{}, fmt.Errorf("%w: a decision needs an id", ErrArms)
	}
	if !req.Kind.valid() {
		return Decision{}, fmt.Errorf("%w: kind %q: use row_order or artwork", ErrArms, req.Kind)
	}
	if err := checkArms(req.Kind, req.Title, req.Arms); err != nil {
		return Decision{}, err
	}
	v := vec{x: make([]float64, p.fz.Dim())}
	if err := p.fz.Encode(req.Context, v.x); err != nil {
		return Decision{}, err
	}
	v.reset()
	sc := make([]float64, len(req.Arms))
	idx := make([]int, len(req.Arms))
	d := Decision{ID: req.ID, At: req.At, Context: req.Context, Kind: req.Kind, Title: req.Title, Arms: req.Arms, Policy: p.id}
	if req.Kind == RowOrder {
		p.decideRows(&d, &v, sc, idx)
	} else {
		p.decideArtwork(&d, &v, sc)
	}
	return d, nil
}

func checkArms(k Kind, title string, arms []string) error {
	switch {
	case k == Artwork && title == "":
		return fmt.Errorf("%w: an artwork decision needs its title", ErrArms)
	case k == RowOrder && title != "":
		return fmt.Errorf("%w: a row order has no title (got %q)", ErrArms, title)
	case len(arms) == 0:
		return fmt.Errorf("%w: no arms", ErrArms)
	case k == RowOrder && len(arms) > MaxRows:
		return fmt.Errorf("%w: %d rows, at most %d", ErrArms, len(arms), MaxRows)
	}
	for i, a := range arms {
		if a == "" {
			return fmt.Errorf("%w: arm %d is empty", ErrArms, i)
		}
		// Pages have a handful of arms: a quadratic check allocates nothing.
		for _, b := range arms[:i] {
			if a == b {
				return fmt.Errorf("%w: arm %q given twice", ErrArms, a)
			}
		}
	}
	return nil
}

// decideRows: with probability 1−ε the rows sorted by score, else a
// uniform permutation. P(order) = (1−ε)·1[order = greedy] + ε/K!, and the
// row placed first has P = (1−ε)·1[first = best] + ε/K.
func (p *Policy) decideRows(d *Decision, v *vec, sc []float64, idx []int) {
	k := len(d.Arms)
	g := p.arms[groupKey{RowOrder, ""}]
	for i, a := range d.Arms {
		sc[i], _ = p.score(g[a], v)
		idx[i] = i
	}
	// Insertion sort, stable: ties keep the order given, so the greedy
	// order is a function of the scores and the arms alone.
	for i := 1; i < k; i++ {
		for j := i; j > 0 && sc[idx[j]] > sc[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	eps := p.params.Epsilon
	chosen := make([]string, k)
	s := newStream(p.params.Seed, d.ID)
	if s.float() < eps {
		best := idx[0]
		greedy := true
		perm := make([]int, k)
		for i := range perm {
			perm[i] = i
		}
		for i := k - 1; i > 0; i-- {
			j := s.intn(i + 1)
			perm[i], perm[j] = perm[j], perm[i]
		}
		for i, pi := range perm {
			chosen[i] = d.Arms[pi]
			greedy = greedy && pi == idx[i]
		}
		d.Propensity = eps / factorial[k]
		if greedy {
			d.Propensity += 1 - eps
		}
		d.FirstPropensity = eps / float64(k)
		if perm[0] == best {
			d.FirstPropensity += 1 - eps
		}
	} else {
		for i, pi := range idx {
			chosen[i] = d.Arms[pi]
		}
		d.Propensity = 1 - eps + eps/factorial[k]
		d.FirstPropensity = 1 - eps + eps/float64(k)
	}
	d.Chosen = chosen
}

// decideArtwork: with probability 1−ε the arm of highest score (the first
// given on a tie), else a uniform one; P(a) = (1−ε)·1[a = best] + ε/K.
func (p *Policy) decideArtwork(d *Decision, v *vec, sc []float64) {
	best := p.bestArtwork(d.Title, d.Arms, v, sc)
	k := len(d.Arms)
	eps := p.params.Epsilon
	s := newStream(p.params.Seed, d.ID)
	j := best
	if s.float() < eps {
		j = s.intn(k)
	}
	d.Propensity = eps / float64(k)
	if j == best {
		d.Propensity += 1 - eps
	}
	d.Chosen = d.Arms[j : j+1 : j+1]
}

func (p *Policy) bestArtwork(title string, arms []string, v *vec, sc []float64) int {
	best := 0
	g := p.arms[groupKey{Artwork, title}]
	for i, a := range arms {
		sc[i], _ = p.score(g[a], v)
		if sc[i] > sc[best] {
			best = i
		}
	}
	return best
}

// bestRow is the arm a greedy row order puts first.
func (p *Policy) bestRow(arms []string, v *vec) int {
	best, bestScore := 0, 0.0
	g := p.arms[groupKey{RowOrder, ""}]
	for i, a := range arms {
		s, _ := p.score(g[a], v)
		if i == 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// TitleArtwork is one title of a page and its artwork variants.
type TitleArtwork struct {
	Title    string   `json:"title"`
	Artworks []string `json:"artworks"`
}

// PageRequest is a page to personalize: its rows and its titles.
type PageRequest struct {
	ID      string
	At      time.Time
	Context map[string]any
	Rows    []string       // the page's rows, to order (none: no row decision)
	Titles  []TitleArtwork // the titles shown, each with its variants
}

// Page is a page's decisions. The row order's id is the page's id plus
// "/rows"; a title's artwork decision's is the page's id plus "/art/" and
// the title: each is logged, and rewarded, on its own.
type Page struct {
	// ID, At and Context are the request's: LogWriter.Page writes the
	// context once for all the page's decisions.
	ID      string         `json:"id"`
	At      time.Time      `json:"-"`
	Context map[string]any `json:"-"`
	Rows    *Decision      `json:"rows,omitempty"`
	Artwork []Decision     `json:"artwork"`
}

// PageRowsID and PageArtworkID are the ids DecidePage gives a page's
// decisions.
func PageRowsID(page string) string           { return page + "/rows" }
func PageArtworkID(page, title string) string { return page + "/art/" + title }

// DecidePage makes a page's decisions with the context encoded once.
func (p *Policy) DecidePage(req PageRequest) (Page, error) {
	if req.ID == "" {
		return Page{}, fmt.Errorf("%w: a page needs an id", ErrArms)
	}
	v := vec{x: make([]float64, p.fz.Dim()), nz: make([]int, 0, p.fz.Dim())}
	if err := p.fz.Encode(req.Context, v.x); err != nil {
		return Page{}, err
	}
	v.reset()
	most := len(req.Rows)
	for _, t := range req.Titles {
		most = max(most, len(t.Artworks))
	}
	sc := make([]float64, most)
	idx := make([]int, most)
	page := Page{ID: req.ID, At: req.At, Context: req.Context}
	if len(req.Rows) > 0 {
		if err := checkArms(RowOrder, "", req.Rows); err != nil {
			return Page{}, fmt.Errorf("rows: %w", err)
		}
		page.Rows = &Decision{ID: PageRowsID(req.ID), At: req.At, Context: req.Context, Kind: RowOrder, Arms: req.Rows, Policy: p.id}
		p.decideRows(page.Rows, &v, sc, idx)
	}
	page.Artwork = make([]Decision, len(req.Titles))
	for i, t := range req.Titles {
		if err := checkArms(Artwork, t.Title, t.Artworks); err != nil {
			return Page{}, fmt.Errorf("title %q: %w", t.Title, err)
		}
		for _, u := range req.Titles[:i] {
			if u.Title == t.Title {
				return Page{}, fmt.Errorf("%w: title %q given twice", ErrArms, t.Title)
			}
		}
		d := &page.Artwork[i]
		*d = Decision{ID: PageArtworkID(req.ID, t.Title), At: req.At, Context: req.Context, Kind: Artwork, Title: t.Title, Arms: t.Artworks, Policy: p.id}
		p.decideArtwork(d, &v, sc)
	}
	return page, nil
}

// Learner updates a policy's models one observation at a time (LinUCB's
// online update) and hands out frozen copies. It is not safe for
// concurrent use; the policies it returns are.
type Learner struct {
	p    *Policy
	x, u []float64 // scratch: an update allocates nothing
}

// NewLearner starts from an empty policy with fz and params.
func NewLearner(fz *Featurizer, params Params) (*Learner, error) {
	p, err := NewPolicy(fz, params)
	if err != nil {
		return nil, err
	}
	return &Learner{p: p, x: make([]float64, fz.Dim()), u: make([]float64, fz.Dim())}, nil
}

// Observe adds a decision's reward: a row order teaches the model of the
// row placed first (the reward is the page's, and the first row is what
// the member sees first); an artwork teaches the chosen artwork's model.
func (l *Learner) Observe(d Decision, reward float64) error {
	x := l.x
	if err := l.p.fz.Encode(d.Context, x); err != nil {
		return err
	}
	if len(d.Chosen) == 0 {
		return fmt.Errorf("%w: decision %q chose nothing", ErrArms, d.ID)
	}
	k := armKey{d.Kind, d.Title, d.Chosen[0]}
	m := l.p.arms.get(k)
	if m == nil {
		m = newArmModel(len(x), l.p.params.Lambda)
		l.p.arms.set(k, m)
	}
	m.update(x, reward, l.u)
	l.p.info.Records++
	if !d.At.IsZero() {
		if l.p.info.From.IsZero() || d.At.Before(l.p.info.From) {
			l.p.info.From = d.At
		}
		if d.At.After(l.p.info.To) {
			l.p.info.To = d.At
		}
	}
	return nil
}

// Policy is a frozen copy of the learner's policy, its A⁻¹ recomputed from
// A (see reinvert) and its id computed.
func (l *Learner) Policy() (*Policy, error) {
	p := &Policy{params: l.p.params, fz: l.p.fz, arms: models{}, info: l.p.info}
	err := l.p.arms.each(func(k armKey, m *armModel) error {
		c := m.clone()
		if err := c.reinvert(); err != nil {
			return fmt.Errorf("arm %s %q %q: %w", k.kind, k.title, k.arm, err)
		}
		p.arms.set(k, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.id, err = p.computeID(); err != nil {
		return nil, err
	}
	return p, nil
}

// Greedy is the arm the policy's greedy part picks in this context: the
// title's best artwork, or the row a greedy order puts first.
func (p *Policy) Greedy(attrs map[string]any, kind Kind, title string, arms []string) (string, error) {
	if !kind.valid() {
		return "", fmt.Errorf("%w: kind %q: use row_order or artwork", ErrArms, kind)
	}
	if err := checkArms(kind, title, arms); err != nil {
		return "", err
	}
	v := vec{x: make([]float64, p.fz.Dim())}
	if err := p.fz.Encode(attrs, v.x); err != nil {
		return "", err
	}
	v.reset()
	if kind == RowOrder {
		return arms[p.bestRow(arms, &v)], nil
	}
	return arms[p.bestArtwork(title, arms, &v, make([]float64, len(arms)))], nil
}
