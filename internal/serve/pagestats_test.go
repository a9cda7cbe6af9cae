package serve

import (
	"bytes"
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/rec"
)

// pageTally is what a set of served pages held, counted from the pages
// themselves: the reference Window must agree with.
type pageTally struct {
	pages, rows, items, newItems int64
	div                          float64
	titles                       map[string]bool
}

func (p *pageTally) add(pg Page) {
	if p.titles == nil {
		p.titles = map[string]bool{}
	}
	p.pages++
	for _, r := range pg.Rows {
		p.rows++
		p.div += r.Diversity
		for _, it := range r.Items {
			p.items++
			if it.NewCreator {
				p.newItems++
			}
			p.titles[it.Title] = true
		}
	}
}

func (p *pageTally) check(t *testing.T, what string, w PageWindow, catalog, models int) {
	t.Helper()
	if w.Pages != p.pages || w.Rows != p.rows || w.Items != p.items || w.NewCreatorItems != p.newItems ||
		math.Abs(w.DiversitySum-p.div) > 1e-9 || w.Titles != len(p.titles) || w.Catalog != catalog || w.Models != models {
		t.Fatalf("%s: window %+v, want pages %d rows %d items %d new %d diversity %g titles %d catalog %d models %d",
			what, w, p.pages, p.rows, p.items, p.newItems, p.div, len(p.titles), catalog, models)
	}
}

// Served pages are counted in the hour of the service's clock they were
// served in: a window sums exactly the pages of its hours, the fallback's
// pages included (its model's catalog is the same titles).
func TestPageStatsCountServedPages(t *testing.T) {
	t.Parallel()
	f, w := recFixture(t, Rerank{Diversity: 0.3, NewCreatorShare: 0.25})
	ctx := context.Background()
	start := f.clk.now()
	var hours [3]pageTally
	fallbacks := 0
	for h := range hours {
		for i, m := range w.Data.Members[h*40 : h*40+40] {
			f.clk.ns.Store(start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Minute).UnixNano())
			resp, err := f.svc.Predict(ctx, "home", Request{Key: m.ID})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Path == PathFallback {
				fallbacks++
			}
			hours[h].add(pageOf(t, resp))
		}
	}
	if fallbacks == 0 || fallbacks == 120 {
		t.Fatalf("%d of 120 pages from the fallback: the test wants both kinds", fallbacks)
	}
	p := f.svc.Pages
	models := 2 // the model and the fallback
	hours[1].check(t, "the second hour", p.Window("home", start.Add(time.Hour), start.Add(2*time.Hour)), 300, models)
	var all pageTally
	for _, h := range hours {
		all.pages += h.pages
		all.rows += h.rows
		all.items += h.items
		all.newItems += h.newItems
		all.div += h.div
		if all.titles == nil {
			all.titles = map[string]bool{}
		}
		for k := range h.titles {
			all.titles[k] = true
		}
	}
	all.check(t, "three hours", p.Window("home", start, start.Add(3*time.Hour)), 300, models)
	// A window that starts within an hour leaves that hour out.
	last := hours[2]
	last.check(t, "from mid-hour", p.Window("home", start.Add(90*time.Minute), start.Add(3*time.Hour)), 300, models)
	if w := p.Window("home", start.Add(3*time.Hour), start.Add(4*time.Hour)); w.Pages != 0 || w.Titles != 0 {
		t.Fatalf("an hour without pages: %+v", w)
	}
	if w := p.Window("nope", start, start.Add(3*time.Hour)); w.Pages != 0 {
		t.Fatalf("an endpoint without pages: %+v", w)
	}
}

// Pages older than the slots kept are not counted (their place holds a
// newer slot), and a window reaches back only as far as the slots kept.
func TestPageStatsKeepsItsSpan(t *testing.T) {
	t.Parallel()
	f, w := recFixture(t, Rerank{})
	ctx := context.Background()
	resp, err := f.svc.Predict(ctx, "home", Request{Key: w.Data.Members[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	pg := pageOf(t, resp)
	p := NewPageStats(time.Hour, 3)
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	for h := range 5 {
		p.Add("home", &pg, t0.Add(time.Duration(h)*time.Hour+time.Minute))
	}
	p.Add("home", &pg, t0.Add(time.Minute)) // its place holds hour 3
	got := p.Window("home", t0, t0.Add(5*time.Hour))
	if got.Pages != 3 || !got.From.Equal(t0.Add(2*time.Hour)) || !got.To.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("window over 5 hours keeping 3: %+v", got)
	}
	if p.Span() != 3*time.Hour {
		t.Fatalf("span %s", p.Span())
	}
}

// Adding a page to a slot that exists allocates nothing and takes no lock:
// it is on every served page's path.
func TestPageStatsAddDoesNotAllocate(t *testing.T) {
	f, w := recFixture(t, Rerank{Diversity: 0.3})
	resp, err := f.svc.Predict(context.Background(), "home", Request{Key: w.Data.Members[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	pg := pageOf(t, resp)
	p := NewPageStats(time.Hour, 4)
	at := time.Date(2026, 11, 29, 0, 30, 0, 0, time.UTC)
	p.Add("home", &pg, at)
	if n := testing.AllocsPerRun(1000, func() { p.Add("home", &pg, at) }); n != 0 {
		t.Fatalf("Add allocates %g times a page", n)
	}
}

// Pages added from many goroutines while windows are read: every page is
// counted once (run with -race).
func TestPageStatsConcurrent(t *testing.T) {
	t.Parallel()
	f, w := recFixture(t, Rerank{})
	ctx := context.Background()
	var pages []Page
	var want pageTally
	for _, m := range w.Data.Members[:20] {
		resp, err := f.svc.Predict(ctx, "home", Request{Key: m.ID})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, pageOf(t, resp))
	}
	p := NewPageStats(time.Minute, 10)
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				pg := pages[(g+i)%len(pages)]
				p.Add("home", &pg, t0.Add(time.Duration(i%5)*time.Minute))
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			_ = p.Window("home", t0, t0.Add(5*time.Minute))
		}
	})
	wg.Wait()
	for g := range 4 {
		for i := range 500 {
			want.add(pages[(g+i)%len(pages)])
		}
	}
	want.check(t, "after 2000 concurrent adds", p.Window("home", t0, t0.Add(5*time.Minute)), 300, 2-boolInt(allFrom(pages)))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// allFrom reports whether every page came from one model.
func allFrom(pages []Page) bool {
	for _, pg := range pages {
		if pg.src != pages[0].src {
			return false
		}
	}
	return true
}

func BenchmarkPageStatsAdd(b *testing.B) {
	w, files := recWorld()
	rm, err := loadRec(files[rec.KindALS])
	if err != nil {
		b.Fatal(err)
	}
	pm := &rowsModel{m: rm, cfg: RecommendConfig{Rows: allRows()}}
	out, err := pm.Predict(context.Background(), Input{Key: w.Data.Members[0].ID})
	if err != nil {
		b.Fatal(err)
	}
	pg := out.Prediction.(Page)
	p := NewPageStats(time.Hour, 4)
	at := time.Date(2026, 11, 29, 0, 30, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		p.Add("home", &pg, at)
	}
}

// BenchmarkPageStatsWindow: a day of an endpoint's pages (24 hourly slots,
// two models' 10,000-title catalogs) summed for a monitor.
func BenchmarkPageStatsWindow(b *testing.B) {
	w, err := rec.Synthesize(rec.Synth{Seed: 3, Members: 500, Titles: 10_000, Interactions: 500 * 30})
	if err != nil {
		b.Fatal(err)
	}
	p := NewPageStats(time.Hour, DefaultPageSlots)
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{rec.KindPopularity, rec.KindKNN} {
		m, err := rec.Train(context.Background(), kind, w.Data, nil)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			b.Fatal(err)
		}
		rm, err := loadRec(buf.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		pm := &rowsModel{m: rm, cfg: RecommendConfig{Rows: []RowConfig{{Type: RowTopPicks}, {Type: RowTrending}, {Type: RowTopInMarket}}}}
		for i := range 1000 {
			out, err := pm.Predict(context.Background(), Input{Key: w.Data.Members[i%500].ID})
			if err != nil {
				b.Fatal(err)
			}
			pg := out.Prediction.(Page)
			p.Add("home", &pg, t0.Add(time.Duration(i)*24*time.Hour/1000))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := p.Window("home", t0, t0.Add(24*time.Hour)); got.Pages != 2000 {
			b.Fatalf("%+v", got)
		}
	}
}
