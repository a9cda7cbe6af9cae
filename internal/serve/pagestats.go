package serve

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// PageStats keeps, per recommend endpoint, what the pages it served held,
// in slots of the service's clock (an hour each, a week of them, by
// default): pages, rows, items, the sum of the rows' diversity, the items
// by new creators, and which titles were shown (a bit per title of the
// catalog of each model that served). The responsible-AI monitors read
// windows of it (Window).
//
// A served page is added with atomic operations on its slot: no lock, no
// allocation, nothing a request waits on. Only the first page of a slot
// (and the first of a model within it) takes a lock, to make it. A
// reader sums slots that requests keep adding to; what it reads of a slot
// still filling is a consistent lower bound of each count.
type PageStats struct {
	width time.Duration
	n     int64
	mu    sync.Mutex // makes rings
	rings atomic.Pointer[map[string]*pageRing]
}

type pageRing struct {
	mu    sync.Mutex // makes slots
	slots []atomic.Pointer[pageSlot]
}

// pageSlot is one endpoint's pages of one slot of time.
type pageSlot struct {
	idx                          int64 // start / width
	pages, rows, items, newItems atomic.Int64
	// div is the sum of the rows' diversity in units of 1e-4 (rows report
	// four decimals), so that concurrent adds are exact integer adds.
	div  atomic.Int64
	mu   sync.Mutex // adds a catalog
	cats atomic.Pointer[[]*titleBits]
}

// titleBits marks the titles of one model's catalog shown in a slot.
type titleBits struct {
	m    *recModel
	bits []atomic.Uint64
}

// DefaultPageSlot and DefaultPageSlots are the slots a Service keeps: an
// hour each, a week of them (and the hour being filled).
const (
	DefaultPageSlot  = time.Hour
	DefaultPageSlots = 7*24 + 1
)

// NewPageStats keeps n slots of width each per endpoint.
func NewPageStats(width time.Duration, n int) *PageStats {
	p := &PageStats{width: width, n: int64(max(n, 1))}
	empty := map[string]*pageRing{}
	p.rings.Store(&empty)
	return p
}

// Span is how far back windows reach: the slots kept.
func (p *PageStats) Span() time.Duration { return time.Duration(p.n) * p.width }

func (p *PageStats) slotIndex(t time.Time) int64 {
	ns, w := t.UnixNano(), int64(p.width)
	i := ns / w
	if ns < 0 && ns%w != 0 {
		i--
	}
	return i
}

func (p *PageStats) ring(endpoint string, create bool) *pageRing {
	if r := (*p.rings.Load())[endpoint]; r != nil || !create {
		return r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := *p.rings.Load()
	if r := cur[endpoint]; r != nil {
		return r
	}
	next := make(map[string]*pageRing, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	r := &pageRing{slots: make([]atomic.Pointer[pageSlot], p.n)}
	next[endpoint] = r
	p.rings.Store(&next)
	return r
}

// slot returns the slot idx of r, making it (in place of an older one)
// if needed; nil when its place holds a newer slot (a page older than the
// span kept).
func (p *PageStats) slot(r *pageRing, idx int64) *pageSlot {
	at := &r.slots[((idx%p.n)+p.n)%p.n]
	if s := at.Load(); s != nil && s.idx == idx {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := at.Load()
	switch {
	case s != nil && s.idx == idx:
		return s
	case s != nil && s.idx > idx:
		return nil
	}
	s = &pageSlot{idx: idx}
	s.cats.Store(&[]*titleBits{})
	at.Store(s)
	return s
}

// titles returns the slot's bits for m's catalog, adding them if needed.
func (s *pageSlot) titles(m *recModel) *titleBits {
	for _, tb := range *s.cats.Load() {
		if tb.m == m {
			return tb
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.cats.Load()
	for _, tb := range cur {
		if tb.m == m {
			return tb
		}
	}
	tb := &titleBits{m: m, bits: make([]atomic.Uint64, (len(m.titles)+63)/64)}
	next := append(cur[:len(cur):len(cur)], tb)
	s.cats.Store(&next)
	return tb
}

// Add counts a page endpoint served at at. A page not built from a
// recommendation model (a static fallback) has no titles to count and is
// left out.
func (p *PageStats) Add(endpoint string, pg *Page, at time.Time) {
	if pg.src == nil {
		return
	}
	s := p.slot(p.ring(endpoint, true), p.slotIndex(at))
	if s == nil {
		return
	}
	tb := s.titles(pg.src)
	var items, newItems, div int64
	for i := range pg.Rows {
		row := &pg.Rows[i]
		div += int64(math.Round(row.Diversity * 1e4))
		for j := range row.Items {
			it := &row.Items[j]
			items++
			if it.NewCreator {
				newItems++
			}
			if t, ok := pg.src.r.TitleIndex(it.Title); ok {
				tb.bits[t/64].Or(1 << (t % 64))
			}
		}
	}
	s.pages.Add(1)
	s.rows.Add(int64(len(pg.Rows)))
	s.items.Add(items)
	s.newItems.Add(newItems)
	s.div.Add(div)
}

// PageWindow is what an endpoint's pages held over a span of slots.
type PageWindow struct {
	// From and To bound the slots summed: [From, To).
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Pages int64     `json:"pages"`
	Rows  int64     `json:"rows"`
	Items int64     `json:"items"`
	// NewCreatorItems are the items by new creators; DiversitySum the sum
	// of the rows' intra-list diversity.
	NewCreatorItems int64   `json:"new_creator_items"`
	DiversitySum    float64 `json:"diversity_sum"`
	// Titles counts the distinct titles shown; Catalog the titles of the
	// catalogs of the models whose pages showed them (a title in several
	// counts once).
	Titles  int `json:"titles"`
	Catalog int `json:"catalog"`
	// Models is how many model versions' pages are in the window.
	Models int `json:"models"`
}

// Window sums the slots of endpoint that start in [from, to), as far back
// as the slots kept reach (From says where the sum starts).
func (p *PageStats) Window(endpoint string, from, to time.Time) PageWindow {
	lo, hi := p.slotIndex(from), p.slotIndex(to)
	if time.Duration(from.UnixNano()-lo*int64(p.width)) != 0 {
		lo++ // a slot that starts before from is not in the window
	}
	if time.Duration(to.UnixNano()-hi*int64(p.width)) == 0 {
		hi-- // nor one that starts at to
	}
	lo = max(lo, hi-p.n+1)
	w := PageWindow{From: time.Unix(0, lo*int64(p.width)).UTC(), To: time.Unix(0, (hi+1)*int64(p.width)).UTC()}
	if hi < lo {
		w.To = w.From
		return w
	}
	r := p.ring(endpoint, false)
	if r == nil {
		return w
	}
	shown := map[*recModel][]uint64{}
	var div int64
	for idx := lo; idx <= hi; idx++ {
		s := r.slots[((idx%p.n)+p.n)%p.n].Load()
		if s == nil || s.idx != idx {
			continue
		}
		w.Pages += s.pages.Load()
		w.Rows += s.rows.Load()
		w.Items += s.items.Load()
		w.NewCreatorItems += s.newItems.Load()
		div += s.div.Load()
		for _, tb := range *s.cats.Load() {
			acc := shown[tb.m]
			if acc == nil {
				acc = make([]uint64, len(tb.bits))
				shown[tb.m] = acc
			}
			for i := range tb.bits {
				acc[i] |= tb.bits[i].Load()
			}
		}
	}
	w.DiversitySum = float64(div) / 1e4
	w.Models = len(shown)
	if len(shown) == 1 {
		// One catalog: count its bits.
		for m, acc := range shown {
			for _, b := range acc {
				w.Titles += bits.OnesCount64(b)
			}
			w.Catalog = len(m.titles)
		}
		return w
	}
	// Several (a canary, a fallback, a new version): titles by id.
	catalog, seen := map[string]bool{}, map[string]bool{}
	for m, acc := range shown {
		for i, t := range m.titles {
			catalog[t.ID] = true
			if acc[i/64]&(1<<(i%64)) != 0 {
				seen[t.ID] = true
			}
		}
	}
	w.Titles, w.Catalog = len(seen), len(catalog)
	return w
}
