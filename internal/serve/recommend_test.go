package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/store"
)

// recWorld is a small planted world with a trained ALS model and the
// popularity model, shared by the tests of this file (training is the
// slow part).
var recWorld = sync.OnceValues(func() (*rec.World, map[string][]byte) {
	w, err := rec.Synthesize(rec.Synth{Seed: 7, Members: 600, Titles: 300, Interactions: 600 * 30})
	if err != nil {
		panic(err)
	}
	files := map[string][]byte{}
	for kind, params := range map[string]map[string]string{
		rec.KindALS:        {"factors": "16", "iterations": "6"},
		rec.KindPopularity: {},
	} {
		m, err := rec.Train(context.Background(), kind, w.Data, params)
		if err != nil {
			panic(err)
		}
		var b bytes.Buffer
		if err := m.Save(&b); err != nil {
			panic(err)
		}
		files[kind] = b.Bytes()
	}
	return w, files
})

// recVersion registers a model file as a production version.
func (f *fixture) recVersion(t *testing.T, model string, b []byte) {
	t.Helper()
	ctx := context.Background()
	d, n, err := f.blobs.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/train/model.rec", Digest: d, Size: n, RunID: 1}, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		if _, err := f.reg.Transition(ctx, model, v.Version, st, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
}

func allRows() []RowConfig {
	return []RowConfig{{Type: RowTopPicks}, {Type: RowBecauseYouWatched}, {Type: RowTrending}, {Type: RowTopInMarket}, {Type: RowNew, Within: Duration(20 * 24 * time.Hour)}}
}

func recFixture(t *testing.T, rr Rerank) (*fixture, *rec.World) {
	t.Helper()
	w, files := recWorld()
	f := newFixture(t)
	f.recVersion(t, "rec-als", files[rec.KindALS])
	f.recVersion(t, "rec-pop", files[rec.KindPopularity])
	f.endpoint(t, Endpoint{Name: "home", Kind: KindRecommend, Model: "rec-als", Features: []string{"x"},
		MinConfidence: 0.5, Fallback: Fallback{Model: "rec-pop"},
		Recommend: &RecommendConfig{Rows: allRows(), Rerank: rr}})
	return f, w
}

func pageOf(t *testing.T, resp Response) Page {
	t.Helper()
	pg, ok := resp.Prediction.(Page)
	if !ok {
		t.Fatalf("prediction is %T, not a page: %+v", resp.Prediction, resp)
	}
	return pg
}

func TestRecommendPage(t *testing.T) {
	f, w := recFixture(t, Rerank{Diversity: 0.3, NewCreatorShare: 0.25})
	ctx := context.Background()
	als, err := rec.Load(bytes.NewReader(func() []byte { _, fs := recWorld(); return fs[rec.KindALS] }()))
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	for _, m := range w.Data.Members[:50] {
		resp, err := f.svc.Predict(ctx, "home", Request{Key: m.ID})
		if err != nil {
			t.Fatal(err)
		}
		if als.Confidence(m.ID) < 0.5 {
			continue
		}
		served++
		if resp.Path != PathModel || resp.Model != "rec-als" {
			t.Fatalf("member %s with history: path %s model %s (%s)", m.ID, resp.Path, resp.Model, resp.Detail)
		}
		pg := pageOf(t, resp)
		if pg.Member != m.ID || pg.Market != m.Market {
			t.Fatalf("page of %s/%s: %+v", m.ID, m.Market, pg)
		}
		seen := map[string]bool{}
		for _, s := range als.History(m.ID) {
			seen[s] = true
		}
		onPage := map[string]string{}
		ids := []string{}
		for _, row := range pg.Rows {
			ids = append(ids, row.ID)
			want := 20
			if row.ID == RowTopInMarket {
				want = 10
			}
			if row.ID != RowNew && len(row.Items) != want {
				t.Fatalf("row %s has %d items, want %d", row.ID, len(row.Items), want)
			}
			if row.Reason == "" || row.Title == "" {
				t.Fatalf("row %s has no title or reason: %+v", row.ID, row)
			}
			nw := 0
			for _, it := range row.Items {
				tt, _ := als.Title(it.Title)
				if !tt.AvailableIn(m.Market) {
					t.Fatalf("row %s shows %s, not available in %s", row.ID, it.Title, m.Market)
				}
				if row.ID == RowTopInMarket {
					continue
				}
				if seen[it.Title] {
					t.Fatalf("row %s shows %s, which %s played", row.ID, it.Title, m.ID)
				}
				if prev, dup := onPage[it.Title]; dup {
					t.Fatalf("%s is in row %s and again in %s", it.Title, prev, row.ID)
				}
				onPage[it.Title] = row.ID
				if it.NewCreator {
					nw++
				}
			}
			if row.ID != RowTopInMarket && row.ID != RowNew && float64(nw) < 0.25*float64(len(row.Items))-1e-9 {
				// Every row's candidates hold enough new creators in this
				// world (15% of titles), so the floor must be met.
				t.Fatalf("row %s: %d of %d titles by new creators, want ≥ 25%%", row.ID, nw, len(row.Items))
			}
		}
		if strings.Join(ids[:4], ",") != "top_picks,because_you_watched,trending,top_in_market" {
			t.Fatalf("rows %v", ids)
		}
		byw := pg.Rows[1]
		anchor, _ := als.MostPlayed(m.ID)
		at, _ := als.Title(anchor)
		if !strings.Contains(byw.Title, at.Name) {
			t.Fatalf("because-you-watched row %q does not name the most played title %q", byw.Title, at.Name)
		}
	}
	if served < 20 {
		t.Fatalf("only %d of 50 members had the model's confidence: the fixture is off", served)
	}

	// An unknown member: confidence 0, the popularity page answers.
	resp, err := f.svc.Predict(ctx, "home", Request{Key: "nobody", Attributes: map[string]any{"market": "US"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Path != PathFallback || resp.Reason != ReasonLowConfidence || resp.Model != "rec-pop" {
		t.Fatalf("unknown member: %+v", resp)
	}
	pg := pageOf(t, resp)
	if pg.Market != "US" || len(pg.Rows) == 0 || !strings.Contains(pg.Rows[0].Reason, "popularity") {
		t.Fatalf("fallback page: %+v", pg)
	}
	for _, row := range pg.Rows {
		if row.ID == RowBecauseYouWatched {
			t.Fatalf("a member with no history got %q", row.Title)
		}
	}
}

// The anchor of "Because You Watched" comes from the online feature when
// the request has it.
func TestRecommendAnchorFeature(t *testing.T) {
	w, files := recWorld()
	f := newFixture(t)
	defs, err := feature.Parse("features.yaml", []byte(`entities: [{name: member, key: member_id}]
sources: [{name: plays, entity: member, timestamp: ts, fields: {minutes: float, title_id: string}}]
features:
  - {name: x, source: plays, aggregate: count, window: 1h}
  - {name: last_title, source: plays, aggregate: last, field: title_id, window: 30d}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(context.Background(), f.st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	f.recVersion(t, "rec-als", files[rec.KindALS])
	f.endpoint(t, Endpoint{Name: "home", Kind: KindRecommend, Model: "rec-als", Fallback: Fallback{Static: []any{}},
		Features: []string{"last_title"}, Recommend: &RecommendConfig{AnchorFeature: "last_title", Rows: []RowConfig{{Type: RowBecauseYouWatched, Title: "More like {title}"}}}})
	last := w.Data.Titles[5]
	resp, err := f.svc.Predict(context.Background(), "home", Request{Key: w.Data.Members[0].ID, Features: map[string]any{"last_title": last.ID}})
	if err != nil {
		t.Fatal(err)
	}
	pg := pageOf(t, resp)
	if len(pg.Rows) != 1 || pg.Rows[0].Title != "More like "+last.Name {
		t.Fatalf("page %+v, want one row about %s", pg, last.Name)
	}
}

// Re-ranking does what it says, measured over many members: more diverse
// rows with diversity on, and more new creators with a share.
func TestRecommendRerankMeasured(t *testing.T) {
	w, _ := recWorld()
	measure := func(rr Rerank) (div, share float64) {
		f, _ := recFixture(t, rr)
		n := 0
		for _, m := range w.Data.Members[:80] {
			resp, err := f.svc.Predict(context.Background(), "home", Request{Key: m.ID})
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range pageOf(t, resp).Rows {
				if row.ID == RowTopPicks {
					div += row.Diversity
					share += row.NewCreatorShare
					n++
				}
			}
		}
		return div / float64(n), share / float64(n)
	}
	d0, s0 := measure(Rerank{})
	d1, _ := measure(Rerank{Diversity: 0.6})
	_, s1 := measure(Rerank{NewCreatorShare: 0.3})
	t.Logf("top picks: diversity %.3f → %.3f with diversity 0.6; new creators %.3f → %.3f with a 0.3 share", d0, d1, s0, s1)
	if d1 < d0+0.03 {
		t.Fatalf("diversity 0.6 made rows no more diverse: %.3f vs %.3f", d1, d0)
	}
	if s1 < 0.3-1e-9 || s1 <= s0 {
		t.Fatalf("new creators' share %.3f with a 0.3 floor (%.3f without)", s1, s0)
	}
}

// A model that is not a recommendation model cannot serve a page: the
// fallback answers, saying why.
func TestRecommendNeedsARecModel(t *testing.T) {
	_, files := recWorld()
	f := newFixture(t)
	f.version(t, "churn", logistic(0), store.ModelCanary, store.ModelProduction)
	f.recVersion(t, "rec-pop", files[rec.KindPopularity])
	f.endpoint(t, Endpoint{Name: "home", Kind: KindRecommend, Model: "churn", Fallback: Fallback{Model: "rec-pop"},
		Recommend: &RecommendConfig{Rows: []RowConfig{{Type: RowTopInMarket}}}})
	resp, err := f.svc.Predict(context.Background(), "home", Request{Key: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Path != PathFallback || resp.Reason != ReasonError || !strings.Contains(resp.Detail, "not a recommendation model file") {
		t.Fatalf("%+v", resp)
	}
	if pg := pageOf(t, resp); len(pg.Rows) != 1 || len(pg.Rows[0].Items) != 10 {
		t.Fatalf("fallback page %+v", pg)
	}
}

func TestRecommendSpecProblems(t *testing.T) {
	base := func() Endpoint {
		return Endpoint{Name: "home", Kind: KindRecommend, Model: "m", Fallback: Fallback{Static: 0},
			Recommend: &RecommendConfig{Rows: []RowConfig{{Type: RowTopPicks}}}}
	}
	for _, c := range []struct {
		mut  func(*Endpoint)
		want string
	}{
		{func(e *Endpoint) { e.Kind = "rank" }, `at.kind: "rank": use predict, recommend or search`},
		{func(e *Endpoint) { e.Recommend = nil }, "at.recommend: a recommend endpoint needs recommend.rows"},
		{func(e *Endpoint) { e.Recommend.Rows = nil }, "at.recommend.rows: a recommend endpoint needs at least one row"},
		{func(e *Endpoint) { e.Recommend.Rows[0].Type = "hot" }, `at.recommend.rows[0].type: "hot": use one of`},
		{func(e *Endpoint) { e.Recommend.Rows = append(e.Recommend.Rows, RowConfig{Type: RowTopPicks}) }, `at.recommend.rows[1].type: "top_picks" twice`},
		{func(e *Endpoint) { e.Recommend.Rows[0].Items = 101 }, "at.recommend.rows[0].items: 101: between 1 and 100"},
		{func(e *Endpoint) { e.Recommend.Rows[0].Within = Duration(time.Hour) }, "at.recommend.rows[0].within: only a row of type new"},
		{func(e *Endpoint) { e.Recommend.Rerank.Diversity = 1 }, "at.recommend.rerank.diversity: 1: in [0, 1)"},
		{func(e *Endpoint) { e.Recommend.Rerank.NewCreatorShare = -0.1 }, "at.recommend.rerank.new_creator_share"},
		{func(e *Endpoint) { e.Kind = KindPredict }, "at.recommend: only an endpoint of kind recommend has rows"},
		{func(e *Endpoint) { e.Recommend.AnchorFeature = "last_title" }, `at.recommend.anchor_feature: "last_title" is not in features`},
	} {
		e := base()
		c.mut(&e)
		errs := e.Problems("at")
		if len(errs) == 0 || !strings.Contains(errs.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, errs)
		}
	}
	if errs := base().Problems("at"); len(errs) != 0 {
		t.Fatalf("a good spec: %v", errs)
	}
}

// BenchmarkRecommendPage is one page of four rows of 20 from a 64-factor
// ALS model over 10,000 titles, with re-ranking, in process.
func BenchmarkRecommendPage(b *testing.B) {
	w, err := rec.Synthesize(rec.Synth{Seed: 3, Members: 2000, Titles: 10_000, Interactions: 2000 * 30})
	if err != nil {
		b.Fatal(err)
	}
	m, err := rec.Train(context.Background(), rec.KindALS, w.Data, map[string]string{"factors": "64", "iterations": "2"})
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
	pm := &rowsModel{m: rm, cfg: RecommendConfig{
		Rows:   []RowConfig{{Type: RowTopPicks}, {Type: RowBecauseYouWatched}, {Type: RowTrending}, {Type: RowNew, Within: Duration(60 * 24 * time.Hour)}},
		Rerank: Rerank{Diversity: 0.3, NewCreatorShare: 0.2}}}
	// As a server does before the model serves.
	if err := (&Service{}).warm(context.Background(), &version{m: pm}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := pm.Predict(context.Background(), Input{Key: w.Data.Members[i%2000].ID}); err != nil {
			b.Fatal(err)
		}
	}
}

// A personalized page: the bandit's production policy orders the rows by
// the member's market (as it learned: US members click trending first, GB
// members top picks), picks artwork, and every decision of a served page
// reaches the decision log with its propensity.
func TestRecommendPersonalized(t *testing.T) {
	w, files := recWorld()
	fz, err := bandit.NewFeaturizer([]bandit.Feature{{Name: "market", Type: bandit.Category, Values: []string{"US", "GB"}}})
	if err != nil {
		t.Fatal(err)
	}
	params := bandit.DefaultParams()
	params.Epsilon = 0.05
	l, err := bandit.NewLearner(fz, params)
	if err != nil {
		t.Fatal(err)
	}
	rows := []string{RowTopPicks, RowTrending, RowTopInMarket}
	for i := range 400 {
		market := []string{"US", "GB"}[i%2]
		first := rows[(i/2)%3]
		order := append([]string{first}, slices.DeleteFunc(slices.Clone(rows), func(r string) bool { return r == first })...)
		best := map[string]string{"US": RowTrending, "GB": RowTopPicks}[market]
		r := 0.0
		if first == best {
			r = 1
		}
		if err := l.Observe(bandit.Decision{ID: fmt.Sprint(i), Context: map[string]any{"market": market}, Kind: bandit.RowOrder,
			Arms: rows, Chosen: order, Propensity: 1.0 / 6, FirstPropensity: 1.0 / 3}, r); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := l.Policy()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	var mu sync.Mutex
	var logged []bandit.Page
	f.svc.d.Decisions = func(endpoint string, p bandit.Page) error {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, p)
		return nil
	}
	f.recVersion(t, "rec-als", files[rec.KindALS])
	f.recVersion(t, "rec-pop", files[rec.KindPopularity])
	f.recVersion(t, "rec-bandit", pb)
	var cfg []RowConfig
	for _, r := range rows {
		cfg = append(cfg, RowConfig{Type: r})
	}
	f.endpoint(t, Endpoint{Name: "home", Kind: KindRecommend, Model: "rec-als", MinConfidence: 0.5, Fallback: Fallback{Model: "rec-pop"},
		Recommend: &RecommendConfig{Rows: cfg, Personalize: &Personalize{Model: "rec-bandit", Artworks: 3, ArtworkItems: 2}}})
	firsts := map[string]map[string]int{"US": {}, "GB": {}}
	served := 0
	for i, m := range w.Data.Members[:200] {
		market := []string{"US", "GB"}[i%2]
		resp, err := f.svc.Predict(context.Background(), "home", Request{Key: m.ID, Attributes: map[string]any{"market": market}})
		if err != nil {
			t.Fatal(err)
		}
		pg := pageOf(t, resp)
		if resp.Path != PathModel {
			if pg.Decision != nil {
				t.Fatalf("the fallback page was personalized: %+v", pg.Decision)
			}
			continue
		}
		served++
		if pg.Decision == nil || pg.Decision.Policy != pol.ID() || !(pg.Decision.Propensity > 0) {
			t.Fatalf("a served page without its decision: %+v", pg.Decision)
		}
		firsts[market][pg.Rows[0].ID]++
		for _, r := range pg.Rows {
			if r.Items[0].Artwork == "" || r.Items[1].Artwork == "" {
				t.Fatalf("row %s: no artwork for its first 2 titles: %+v", r.ID, r.Items[:2])
			}
		}
	}
	t.Logf("first rows: %v (%d pages served by the model)", firsts, served)
	if served < 50 || firsts["US"][RowTrending] < firsts["US"][RowTopPicks]*3 || firsts["GB"][RowTopPicks] < firsts["GB"][RowTrending]*3 {
		t.Fatalf("the policy did not order rows by market: %v", firsts)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != served {
		t.Fatalf("%d pages served, %d logged", served, len(logged))
	}
	for _, p := range logged {
		if p.Rows == nil || len(p.Artwork) == 0 || len(p.Artwork) > 2*len(rows) || p.Rows.Propensity <= 0 || p.Rows.Context["market"] == nil {
			t.Fatalf("logged page %+v", p)
		}
	}
	// Without a market attribute, the member's own market is the context.
	logged = nil
	mu.Unlock()
	for _, m := range w.Data.Members[:200] {
		resp, err := f.svc.Predict(context.Background(), "home", Request{Key: m.ID})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Path != PathModel {
			continue
		}
		mu.Lock()
		if len(logged) != 1 || logged[0].Rows.Context["market"] != m.Market {
			t.Fatalf("member %s of %s, no market attribute: logged %+v", m.ID, m.Market, logged)
		}
		mu.Unlock()
		break
	}
	mu.Lock()
}

// The example file parses, and serves pages once its models are in
// production.
func TestExampleRecommendEndpoint(t *testing.T) {
	eps, err := ParseFile("../../examples/rec/endpoints.yaml")
	if err != nil || len(eps) != 1 || eps[0].Kind != KindRecommend || len(eps[0].Recommend.Rows) != 5 {
		t.Fatalf("example: %+v %v", eps, err)
	}
	w, files := recWorld()
	f := newFixture(t)
	f.recVersion(t, "rec-als", files[rec.KindALS])
	f.recVersion(t, "rec-popularity", files[rec.KindPopularity])
	f.endpoint(t, eps[0])
	for _, c := range []struct{ key, path string }{{w.Data.Members[0].ID, PathModel}, {"nobody", PathFallback}} {
		resp, err := f.svc.Predict(context.Background(), "home", Request{Key: c.key})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Path != c.path || len(pageOf(t, resp).Rows) < 3 {
			t.Fatalf("%s: %+v", c.key, resp)
		}
	}
}
