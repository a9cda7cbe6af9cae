package rec

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

// TestRankMetricsByHand: hits at ranks 2 and 4 of 4, three relevant.
func TestRankMetricsByHand(t *testing.T) {
	r, n, ap := rankMetrics([]int32{1, 2, 3, 4}, []int32{2, 4, 9}, 4)
	near(t, "recall", r, 2.0/3)
	// DCG 1/log2(3) + 1/log2(5) = 1.0616063; IDCG 1 + 1/log2(3) + 1/2 = 2.1309298.
	near(t, "ndcg", n, 0.498189257466413)
	near(t, "ap", ap, (1.0/2+2.0/4)/3)
	// The cut-off applies: at k=1 nothing is hit.
	r, n, ap = rankMetrics([]int32{1, 2}, []int32{2}, 1)
	near(t, "recall@1", r, 0)
	near(t, "ndcg@1", n, 0)
	near(t, "ap@1", ap, 0)
	near(t, "diversity", listDiversity([]Title{{Genres: []string{"a", "b"}}, {Genres: []string{"b", "c"}}, {Genres: []string{"d"}}}, []int32{0, 1, 2}),
		1-(1.0/3+0+0)/3)
}

// tiny is a four-title catalog, three members in two markets.
func tiny(t testing.TB) (*Dataset, *Dataset) {
	t.Helper()
	catalog := `title,name,genres,creator,new_creator,released,markets
A,Alpha,x|y,c1,false,2025-01-01,
B,Beta,x,c2,false,2025-01-01,
C,Gamma,x|z,c1,false,2025-01-01,
D,Delta,,c9,true,2025-06-01,FR
`
	members := "member,market,joined\nm1,US,\nm2,US,\nm3,FR,2024-01-01T00:00:00Z\n"
	inter := `member,title,ts,event
m1,A,10,play
m2,A,11,play
m2,B,12,play
m3,A,13,play
m3,C,14,play
m3,C,15,play
m1,B,100,play
m1,C,101,play
m1,C,102,complete
m2,C,103,play
m3,D,104,play
`
	d, err := ReadDataset(strings.NewReader(catalog), "catalog.csv", strings.NewReader(members), "members.csv", strings.NewReader(inter), "inter.csv")
	if err != nil {
		t.Fatal(err)
	}
	return d.Cut(100)
}

// TestEvaluateByHand: popularity on the tiny catalog, every metric worked
// out by hand (see the comments).
func TestEvaluateByHand(t *testing.T) {
	tr, te := tiny(t)
	m := train(t, KindPopularity, tr, nil)
	// m1 (US, saw A): B then C (D is FR only); m2 (US, saw A, B): C;
	// m3 (FR, saw A, C): B then D.
	for member, want := range map[string]string{"m1": "B,C", "m2": "C", "m3": "B,D"} {
		var got []string
		for _, it := range m.Recommend(member, Options{N: 2}) {
			got = append(got, it.Title)
		}
		if strings.Join(got, ",") != want {
			t.Fatalf("%s: %v, want %s", member, got, want)
		}
	}
	r, err := Evaluate(context.Background(), m, te, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Members != 3 {
		t.Fatalf("members %d", r.Members)
	}
	near(t, "recall", r.Recall, 1)
	near(t, "ndcg", r.NDCG, (1+1+1/math.Log2(3))/3)
	near(t, "map", r.MAP, (1+1+0.5)/3)
	near(t, "ndcg_complete", r.NDCGComplete, 1/math.Log2(3)) // m1 completed C, ranked 2nd
	near(t, "coverage", r.Coverage, 3.0/4)
	near(t, "diversity", r.Diversity, (0.5+1)/2) // [B C]: J({x},{x,z}) = 1/2; [B D]: 0
	// Plays A 3, B 1, C 2, D 0 of 6, four titles: shares (n+1)/10.
	near(t, "novelty", r.Novelty, (2*-math.Log2(0.2)+2*-math.Log2(0.3)+-math.Log2(0.1))/5)
	near(t, "new_creator_share", r.NewCreatorShare, 1.0/5)
	near(t, "recall/US", r.MarketRecall["US"], 1)
	near(t, "recall/FR", r.MarketRecall["FR"], 1)
	if f := r.Flat(); f["recall@2"] != 1 || f["recall@2/FR"] != 1 || f["coverage@2"] != 0.75 {
		t.Fatalf("flat: %v", f)
	}
}

// TestUnknownMemberAndMarkets: an unknown member gets popularity in the
// market asked for, confidence 0, no error; titles outside a market are
// never shown there; unknown titles score NaN.
func TestUnknownMemberAndMarkets(t *testing.T) {
	tr, _ := tiny(t)
	for _, kind := range []string{KindPopularity, KindALS, KindKNN, KindPPR} {
		m := train(t, kind, tr, map[string]string{})
		if c := m.Confidence("nobody"); c != 0 {
			t.Fatalf("%s: unknown member confidence %g", kind, c)
		}
		if c := m.Confidence("m3"); !(c > 0) {
			t.Fatalf("%s: known member confidence %g", kind, c)
		}
		var got []string
		for _, it := range m.Recommend("nobody", Options{N: 4, Market: "FR"}) {
			got = append(got, it.Title)
		}
		if strings.Join(got, ",") != "C,A,B,D" {
			t.Fatalf("%s: unknown member in FR: %v", kind, got)
		}
		for _, member := range []string{"m1", "m2", "nobody"} {
			for _, it := range m.Recommend(member, Options{N: 4, IncludeSeen: true, Market: "US"}) {
				if it.Title == "D" {
					t.Fatalf("%s: D (FR only) shown to %s in US", kind, member)
				}
			}
		}
		s := m.Score("m1", []string{"A", "nope"})
		if math.IsNaN(s[0]) || !math.IsNaN(s[1]) {
			t.Fatalf("%s: scores %v", kind, s)
		}
		if items := m.Recommend("m1", Options{N: 10, Exclude: []string{"B"}}); len(items) != 1 || items[0].Title != "C" {
			t.Fatalf("%s: m1 without seen A, excluded B, FR-only D: %v", kind, items)
		}
	}
}

func TestReadErrors(t *testing.T) {
	catalog := "title,name,genres,creator,new_creator,released\nA,Alpha,x,c,false,2025-01-01\n"
	for _, c := range []struct {
		name, catalog, inter string
		line                 int
		column, msg          string
	}{
		{"missing column", catalog, "member,title\nm,A\n", 1, "", `no column "ts"`},
		{"unknown title", catalog, "member,title,ts\nm,A,1\nm,Z,2\n", 3, "title", `title "Z" is not in the catalog`},
		{"bad ts", catalog, "member,title,ts\nm,A,yesterday\n", 2, "ts", `"yesterday" is not a time`},
		{"bad event", catalog, "member,title,ts,event\nm,A,1,pause\n", 2, "event", `"pause": write play or complete`},
		{"bad weight", catalog, "member,title,ts,weight\nm,A,1,-2\n", 2, "weight", "must be a number above 0"},
		{"zero weight", catalog, "member,title,ts,weight\nm,A,1,0\n", 2, "weight", "must be a number above 0"},
		{"weight that overflows float32", catalog, "member,title,ts,weight\nm,A,1,1e39\n", 2, "weight", "at most 1e+06"},
		{"no rows", catalog, "member,title,ts\n", 1, "", "no data rows"},
		{"empty member", catalog, "member,title,ts\n,A,1\n", 2, "member", "empty member id"},
		{"dup title", catalog + "A,Again,x,c,false,2025-01-01\n", "member,title,ts\nm,A,1\n", 3, "title", `title "A" again (first on line 2)`},
		{"bad new_creator", "title,name,genres,creator,new_creator,released\nA,Alpha,x,c,maybe,2025-01-01\n", "member,title,ts\nm,A,1\n", 2, "new_creator", "write true or false"},
		{"bad released", "title,name,genres,creator,new_creator,released\nA,Alpha,x,c,false,soon\n", "member,title,ts\nm,A,1\n", 2, "released", "not a time"},
	} {
		_, err := ReadDataset(strings.NewReader(c.catalog), "cat.csv", nil, "", strings.NewReader(c.inter), "in.csv")
		var ie *csvtable.InputError
		if !errors.As(err, &ie) || !errors.Is(err, fault.Invalid) {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ie.Line != c.line || ie.Column != c.column || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: line %d column %q: %v", c.name, ie.Line, ie.Column, err)
		}
	}
}

func TestParams(t *testing.T) {
	tr, _ := tiny(t)
	for _, c := range []struct {
		kind string
		p    map[string]string
		msg  string
	}{
		{KindALS, map[string]string{"factors": "0"}, `param factors: "0": must be an integer from 1 to 1024`},
		{KindALS, map[string]string{"lambda": "-1"}, `param lambda: "-1": must be a number ≥ 0`},
		{KindALS, map[string]string{"precision": "half"}, `param precision: "half": must be one of float32, float64`},
		{KindALS, map[string]string{"factor": "8"}, "param factor: unknown parameter (this kind takes: alpha, cg_steps, factors, half_life_days, iterations, lambda, precision, seed)"},
		{KindBlend, map[string]string{"als.factor": "8"}, "param als.factor: unknown parameter"},
		{KindBlend, map[string]string{"als.factors": "x"}, `param als.factors: "x": must be an integer`},
		{"svd", nil, `unknown model kind "svd"`},
	} {
		_, err := Train(context.Background(), c.kind, tr, c.p)
		if !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s %v: %v", c.kind, c.p, err)
		}
	}
}

func TestSynthesizeDeterministic(t *testing.T) {
	a, err := Synthesize(Synth{Seed: 5, Members: 100, Titles: 50})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Synthesize(Synth{Seed: 5, Members: 100, Titles: 50})
	c, _ := Synthesize(Synth{Seed: 6, Members: 100, Titles: 50})
	var wa, wb, wc strings.Builder
	WriteInteractions(&wa, a.Data)
	WriteInteractions(&wb, b.Data)
	WriteInteractions(&wc, c.Data)
	if wa.String() != wb.String() || wa.String() == wc.String() {
		t.Fatal("the same seed must give the same data, another seed other data")
	}
	if a.Data.Inter.Len() != 4000 {
		t.Fatalf("%d rows, want 40 per member", a.Data.Inter.Len())
	}
	for m := range 10 {
		for ti := range 10 {
			p, q := a.PPlay(m, ti), a.PComplete(m, ti)
			if !(p >= 0 && p <= 1 && q >= 0 && q <= 1) {
				t.Fatalf("probabilities %g %g", p, q)
			}
		}
	}
	// What it writes reads back the same.
	var cat, mem strings.Builder
	WriteCatalog(&cat, a.Data.Titles)
	WriteMembers(&mem, a.Data.Members)
	d, err := ReadDataset(strings.NewReader(cat.String()), "c", strings.NewReader(mem.String()), "m", strings.NewReader(wa.String()), "i")
	if err != nil {
		t.Fatal(err)
	}
	var again strings.Builder
	WriteInteractions(&again, d)
	if again.String() != wa.String() || len(d.Titles) != 50 || len(d.Members) != 100 {
		t.Fatal("a written world does not read back the same")
	}
}

func FuzzReadDataset(f *testing.F) {
	f.Add("member,title,ts\nm,A,1\n")
	f.Add("member,title,ts,event,weight,market\nm,A,2026-01-01T00:00:00Z,complete,2.5,US\nn,B,3,play,,\n")
	f.Add("member,title,ts\n\"m,1\",A,1\n")
	f.Add("member,title,ts,weight\nm,A,1,NaN\n")
	f.Fuzz(func(t *testing.T, inter string) {
		catalog := "title,name,genres,creator,new_creator,released,markets\nA,Alpha,x|y,c,false,2025-01-01,US|FR\nB,Beta,,c,true,1700000000,\n"
		d, err := ReadDataset(strings.NewReader(catalog), "c.csv", nil, "", strings.NewReader(inter), "i.csv")
		if err != nil {
			if !errors.Is(err, fault.Invalid) {
				t.Fatalf("error not invalid input: %v", err)
			}
			return
		}
		in := &d.Inter
		n := in.Len()
		if len(in.Title) != n || len(in.TS) != n || len(in.Event) != n || len(in.Weight) != n || len(in.Market) != n {
			t.Fatal("columns of different lengths")
		}
		for r := range n {
			if int(in.Member[r]) >= len(d.Members) || int(in.Title[r]) >= len(d.Titles) || int(in.Market[r]) >= len(d.Markets) || !(in.Weight[r] > 0) {
				t.Fatalf("row %d out of range", r)
			}
		}
		m, err := Train(context.Background(), KindPopularity, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Recommend(d.Members[0].ID, Options{N: 3})
	})
}

func FuzzLoad(f *testing.F) {
	tr, _ := tiny(f)
	for _, kind := range Kinds {
		var p map[string]string
		if kind == KindBlend {
			p = map[string]string{"validation": "0.5"}
		}
		m, err := Train(context.Background(), kind, tr, p)
		if err != nil {
			f.Fatal(err)
		}
		var b strings.Builder
		if err := m.Save(&b); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(b.String()))
	}
	f.Add([]byte("BATONREC 2 als\n"))
	f.Add([]byte("BATONREC 1 als\nxx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, fault.Invalid) {
				t.Fatalf("not invalid input: %v", err)
			}
			return
		}
		// A forged walk count is legal but slow (a million walks a call):
		// the fuzzer is after crashes, not slow calls.
		walks := 0
		switch s := m.s.(type) {
		case *pprModel:
			walks = s.Walks
		case *blendModel:
			walks = s.PPR.Walks
		}
		if walks > 5000 {
			return
		}
		for _, member := range []string{"m1", "m3", "nobody"} {
			m.Recommend(member, Options{N: 5})
			m.Score(member, []string{"A", "D"})
			m.Confidence(member)
		}
	})
}

// TestColdMember: a member known to the model but without a title in its
// training data gets popularity in their market from every kind, and
// confidence 0, in Recommend and in TopNAll alike.
func TestColdMember(t *testing.T) {
	tr, _ := tiny(t)
	cold, _ := tr.Cut(13) // m3 plays later: known, no history
	for _, kind := range []string{KindALS, KindKNN, KindPPR, KindMultiTask} {
		m := train(t, kind, cold, nil)
		if c := m.Confidence("m3"); c != 0 {
			t.Fatalf("%s: cold member's confidence %g", kind, c)
		}
		got := m.Recommend("m3", Options{N: 4})
		var top []Item
		m.TopNAll(context.Background(), 4, func(member string, items []Item) error {
			if member == "m3" {
				top = items
			}
			return nil
		})
		// FR popularity over m1 A, m2 A, m2 B: A then B, then C and D.
		if len(got) != 4 || got[0].Title != "A" || got[1].Title != "B" || len(top) != 4 || top[0] != got[0] || top[1] != got[1] {
			t.Fatalf("%s: cold member %v, batch %v", kind, got, top)
		}
	}
}

// TestTopNAllMatchesRecommend: the batch path (ALS by matrix product)
// answers what Recommend answers, member by member, in member order.
func TestTopNAllMatchesRecommend(t *testing.T) {
	_, tr, _ := world(t, 4, 400, 90)
	for _, kind := range []string{KindALS, KindKNN} {
		m := train(t, kind, tr, nil)
		i := 0
		err := m.TopNAll(context.Background(), 7, func(member string, items []Item) error {
			if member != tr.Members[i].ID {
				t.Fatalf("%s: member %d is %s, want %s", kind, i, member, tr.Members[i].ID)
			}
			want := m.Recommend(member, Options{N: 7})
			if len(items) != len(want) {
				t.Fatalf("%s %s: %d items, want %d", kind, member, len(items), len(want))
			}
			for j := range want {
				if items[j].Title != want[j].Title || math.Abs(items[j].Score-want[j].Score) > 1e-5 {
					t.Fatalf("%s %s: item %d %v, want %v", kind, member, j, items[j], want[j])
				}
			}
			i++
			return nil
		})
		if err != nil || i != len(tr.Members) {
			t.Fatalf("%s: %v after %d members", kind, err, i)
		}
	}
}

// TestSimilar: every kind names titles like a given one, the title itself
// excluded, the market respected; on planted data the titles ALS finds
// alike share more genres than chance.
func TestSimilar(t *testing.T) {
	tr, _ := tiny(t)
	for _, kind := range Kinds {
		var p map[string]string
		if kind == KindBlend {
			p = map[string]string{"validation": "0.5"}
		}
		m := train(t, kind, tr, p)
		got := m.Similar("A", 3, "US")
		if len(got) == 0 {
			t.Fatalf("%s: nothing like A", kind)
		}
		for _, it := range got {
			if it.Title == "A" || it.Title == "D" {
				t.Fatalf("%s: %v", kind, got)
			}
		}
		if m.Similar("nope", 3, "") != nil {
			t.Fatalf("%s: an unknown title has similar ones", kind)
		}
	}
	_, big, _ := world(t, 2, 600, 120)
	m := train(t, KindALS, big, map[string]string{"factors": "8"})
	shared, pairs := 0.0, 0.0
	for _, ti := range big.Titles[:40] {
		for _, it := range m.Similar(ti.ID, 5, "") {
			o, _ := m.Title(it.Title)
			shared += jaccard(ti.Genres, o.Genres)
			pairs++
		}
	}
	var base float64
	for i := range 40 {
		base += jaccard(big.Titles[i].Genres, big.Titles[(i*7+13)%len(big.Titles)].Genres)
	}
	t.Logf("genre Jaccard: similar titles %.3f, arbitrary pairs %.3f", shared/pairs, base/40)
	if shared/pairs < 1.5*base/40 {
		t.Fatalf("ALS's similar titles share genres %.3f, no more than arbitrary pairs %.3f", shared/pairs, base/40)
	}
}

// TestSimilarIndexes: the table serving builds at load is Similar's
// answer for every title, of every kind, however many workers build it;
// a cancelled build answers nothing.
func TestSimilarIndexes(t *testing.T) {
	_, big, _ := world(t, 2, 300, 80)
	for _, kind := range Kinds {
		var p map[string]string
		switch kind {
		case KindBlend:
			p = map[string]string{"validation": "0.5"}
		case KindALS, KindMultiTask:
			p = map[string]string{"factors": "8"}
		}
		m := train(t, kind, big, p)
		all := make([]int32, len(big.Titles))
		for i := range all {
			all[i] = int32(len(all) - 1 - i) // any order
		}
		for _, workers := range []int{1, 3} {
			tab, err := m.SimilarIndexes(context.Background(), all, 7, workers)
			if err != nil {
				t.Fatal(err)
			}
			for i, ti := range all {
				want := m.Similar(big.Titles[ti].ID, 7, "")
				if len(tab[i]) != len(want) {
					t.Fatalf("%s: title %d: %d neighbours, Similar has %d", kind, ti, len(tab[i]), len(want))
				}
				for j, it := range want {
					if got := big.Titles[tab[i][j]].ID; got != it.Title {
						t.Fatalf("%s, %d workers: title %d neighbour %d is %s, Similar says %s", kind, workers, ti, j, got, it.Title)
					}
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if tab, err := m.SimilarIndexes(ctx, all, 7, 2); err == nil || tab != nil {
			t.Fatalf("%s: a cancelled build gave %d lists, err %v", kind, len(tab), err)
		}
	}
}

// TestPageScores: PageScores answers what ScoreAll fills, for every kind,
// member (known, without history, unknown) and market (the member's,
// another, none, unknown); when it says the scores are a market's
// popularity, they are that market's Popularity row, and the model's own.
func TestPageScores(t *testing.T) {
	tr, _ := tiny(t)
	for _, kind := range Kinds {
		var p map[string]string
		if kind == KindBlend {
			p = map[string]string{"validation": "0.5"}
		}
		m := train(t, kind, tr, p)
		for _, member := range []string{"m1", "m2", "m3", "m4", "nobody"} {
			for _, market := range []string{"", "US", "FR", "XX"} {
				want := make([]float32, len(m.Titles()))
				m.ScoreAll(member, market, want)
				dst := make([]float32, len(m.Titles()))
				got, pm, pop := m.PageScores(member, market, dst)
				if !slices.Equal(got, want) {
					t.Fatalf("%s %s %q: PageScores %v, ScoreAll %v", kind, member, market, got, want)
				}
				if pop != (&got[0] != &dst[0]) {
					t.Fatalf("%s %s %q: popular %v, but the answer is dst: %v", kind, member, market, pop, &got[0] == &dst[0])
				}
				if pop && !slices.Equal(got, m.Popularity(pm)) {
					t.Fatalf("%s %s %q: said popularity of %q, %v is not %v", kind, member, market, pm, got, m.Popularity(pm))
				}
				cold := member == "nobody" || member == "m4" || kind == KindPopularity
				if pop != cold {
					t.Fatalf("%s %s %q: popular %v", kind, member, market, pop)
				}
			}
		}
	}
}
