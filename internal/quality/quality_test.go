package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// The planted ratings follow the signals: the fitted model must predict
// held-out ratings far better than their mean, and flag the titles with a
// broken signal, naming it.
func TestLearnsPlantedRatingsAndFlagsBrokenSignals(t *testing.T) {
	ctx := context.Background()
	s := Synthesize(3000, 0.4, 1)
	m, err := Train(ctx, s.Signals, s.Ratings, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mt := m.Metrics
	t.Logf("metrics %+v\nweights %v", mt, m.Weights)
	if mt.Test < 150 {
		t.Fatalf("only %d held-out titles", mt.Test)
	}
	if !(mt.RMSE <= 0.6*mt.RMSEBaseline) || !(mt.R2 >= 0.6) {
		t.Errorf("held-out RMSE %.3f vs the mean's %.3f, R² %.3f: want ≤ 0.6× and R² ≥ 0.6", mt.RMSE, mt.RMSEBaseline, mt.R2)
	}
	scores, err := m.Score(ctx, s.Signals, Shard{0, 1}, math.NaN())
	if err != nil {
		t.Fatal(err)
	}
	named, flagged := 0, 0
	for _, sc := range scores {
		sig, broken := s.Broken[sc.Title]
		if !broken {
			continue
		}
		if sc.Flagged {
			flagged++
		}
		if len(sc.Reasons) > 0 && strings.HasPrefix(sc.Reasons[0], sig+" ") {
			named++
		}
	}
	nb := len(s.Broken)
	if nb < 100 || float64(flagged) < 0.8*float64(nb) || float64(named) < 0.8*float64(nb) {
		t.Errorf("%d titles with a broken signal: %d flagged, %d with it as the first reason; want ≥ 80%% each", nb, flagged, named)
	}
	ok := 0
	for _, sc := range scores {
		if _, broken := s.Broken[sc.Title]; !broken && !sc.Flagged {
			ok++
		}
	}
	if float64(ok) < 0.8*float64(len(scores)-nb) {
		t.Errorf("only %d of %d titles without a broken signal are not flagged", ok, len(scores)-nb)
	}
}

func TestShardsPartitionTheTitles(t *testing.T) {
	ctx := context.Background()
	s := Synthesize(500, 0.5, 2)
	m, err := Train(ctx, s.Signals, s.Ratings, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := m.Score(ctx, s.Signals, Shard{0, 1}, math.NaN())
	parts := map[string][]Score{}
	for i := range 4 {
		sc, err := m.Score(ctx, s.Signals, Shard{i, 4}, math.NaN())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteScores(&buf, sc); err != nil {
			t.Fatal(err)
		}
		back, err := ReadScores(&buf, "shard")
		if err != nil {
			t.Fatal(err)
		}
		parts[string(rune('a'+i))] = back
	}
	merged, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != len(all) {
		t.Fatalf("merged %d of %d titles", len(merged), len(all))
	}
	byTitle := map[string]Score{}
	for _, sc := range all {
		byTitle[sc.Title] = sc
	}
	for _, sc := range merged {
		w := byTitle[sc.Title]
		if math.Abs(w.Score-sc.Score) > 1e-4 || w.Flagged != sc.Flagged || strings.Join(w.Reasons, "; ") != strings.Join(sc.Reasons, "; ") {
			t.Fatalf("%s: whole %+v, merged %+v", sc.Title, w, sc)
		}
	}
	parts["z"] = parts["a"]
	if _, err := Merge(parts); !errors.Is(err, fault.Invalid) {
		t.Errorf("overlapping shards: %v", err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(bad); !errors.Is(err, fault.Invalid) {
			t.Errorf("shard %q: %v", bad, err)
		}
	}
}

func TestModelRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := Synthesize(300, 0.5, 3)
	m, err := Train(ctx, s.Signals, s.Ratings, TrainOptions{Threshold: 3.2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m.Write(&buf)
	m2, err := ReadModel(&buf, "m.json")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.Score(ctx, s.Signals, Shard{0, 1}, math.NaN())
	b, _ := m2.Score(ctx, s.Signals, Shard{0, 1}, math.NaN())
	for i := range a {
		if a[i].Score != b[i].Score || a[i].Flagged != b[i].Flagged {
			t.Fatalf("%d: %+v vs %+v", i, a[i], b[i])
		}
	}
	if _, err := ReadModel(strings.NewReader(`{"format":1,"signals":["vmaf"]}`), "m.json"); !errors.Is(err, fault.Invalid) {
		t.Errorf("bad model: %v", err)
	}
	// A signals file without a column the model uses.
	sig, err := ReadSignals(strings.NewReader("title,vmaf\nt1,80\n"), "s.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Score(ctx, sig, Shard{0, 1}, math.NaN()); !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "bitrate_kbps") {
		t.Errorf("missing column: %v", err)
	}
	if _, err := Train(ctx, sig, map[string]float64{"t1": 3}, TrainOptions{}); !errors.Is(err, fault.Invalid) {
		t.Errorf("one rating: %v", err)
	}
}

func TestReadersNameTheCell(t *testing.T) {
	for _, c := range []struct {
		in, want string
		read     func(string) error
	}{
		{"title,vmaf\nt1,high\n", `line 2, column "vmaf"`, rs},
		{"title,vmaf\nt1,1\nt1,2\n", "also on line 2", rs},
		{"name,vmaf\nt1,1\n", "header", rs},
		{"title,rating\nt1,NaN\n", `line 2, column "rating"`, rr},
		// Values no measurement can take: named with the title, the
		// column and the value.
		{"title,bitrate_kbps\nt1,3000\nt2,-500\n", `line 3, column "bitrate_kbps": title "t2": bitrate_kbps -500: must be above 0`, rs},
		{"title,bitrate_kbps\nt1,0\n", `title "t1": bitrate_kbps 0: must be above 0`, rs},
		{"title,bitrate_kbps\nt1,1e300\n", `title "t1": bitrate_kbps 1e300: must be above 0 and at most 1000000 kbps`, rs},
		{"title,startup_ms\nt1,-1\n", `column "startup_ms": title "t1": startup_ms -1: must be from 0`, rs},
		{"title,vmaf\nt1,100.5\n", `title "t1": vmaf 100.5: must be from 0 to 100`, rs},
		{"title,rebuffer_rate\nt1,1.5\n", `title "t1": rebuffer_rate 1.5: must be a share`, rs},
		{"title,audio_lufs\nt1,-90\n", `title "t1": audio_lufs -90: must be from -70`, rs},
		{"title,subtitle_coverage\nt1,-0.1\n", `title "t1": subtitle_coverage -0.1`, rs},
		{"title,score\n", "title,rating", rr},
	} {
		err := c.read(c.in)
		var ie *csvtable.InputError
		if !errors.As(err, &ie) || !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an input error with %q", c.in, err, c.want)
		}
	}
}

func rs(s string) error { _, err := ReadSignals(strings.NewReader(s), "s.csv"); return err }
func rr(s string) error { _, err := ReadRatings(strings.NewReader(s), "r.csv"); return err }

func FuzzReadSignals(f *testing.F) {
	f.Add("title,vmaf,bitrate_kbps\nt1,80,3000\nt2,\"70\",1e3\n")
	f.Add("title,rating\nt1,4\n")
	f.Add("") // an empty file once came back as a bare io.EOF
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ReadSignals(strings.NewReader(in), "f.csv")
		if err != nil {
			if !errors.Is(err, fault.Invalid) {
				t.Fatalf("not invalid input: %v", err)
			}
		} else {
			for i := range s.Titles {
				for _, v := range s.Row(i) {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("non-finite value accepted")
					}
				}
			}
		}
		if _, err := ReadRatings(strings.NewReader(in), "f.csv"); err != nil && !errors.Is(err, fault.Invalid) {
			t.Fatalf("ratings: not invalid input: %v", err)
		}
	})
}

// A linear model extrapolates: signals at the edge of their physical
// range, far past what it was fitted on, must still score on the scale
// of the ratings it learned (a negative bitrate once scored 10.9 on the
// 1–5 scale, now refused by the reader; a startup of ten minutes scored
// far below 1).
func TestScoresStayOnTheRatingScale(t *testing.T) {
	ctx := context.Background()
	s := Synthesize(1000, 0.5, 4)
	m, err := Train(ctx, s.Signals, s.Ratings, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range s.Ratings {
		lo, hi = min(lo, r), max(hi, r)
	}
	sig, err := ReadSignals(strings.NewReader("title,bitrate_kbps,vmaf,rebuffer_rate,startup_ms,audio_lufs,subtitle_coverage\n"+
		"worst,1,0,1,600000,-70,0\n"+
		"best,1000000,100,0,0,-24,1\n"), "edge.csv")
	if err != nil {
		t.Fatal(err)
	}
	scores, err := m.Score(ctx, sig, Shard{0, 1}, math.NaN())
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]float64, len(m.Signals))
	for i, sc := range scores {
		copy(raw, sig.Row(i))
		c := make([]float64, len(raw))
		m.contributions(raw, c)
		unclamped := m.Intercept
		for _, v := range c {
			unclamped += v
		}
		t.Logf("%s: %.3f (unclamped %.3f)", sc.Title, sc.Score, unclamped)
		if !(sc.Score >= lo && sc.Score <= hi) {
			t.Errorf("%s scores %g, off the ratings' scale %g..%g", sc.Title, sc.Score, lo, hi)
		}
	}
	if scores[0].Score != lo || !scores[0].Flagged {
		t.Errorf("the worst signals score %+v, want the lowest rating %g, flagged", scores[0], lo)
	}
	// A model file without a scale (or an inverted one) is refused.
	var buf bytes.Buffer
	m.Write(&buf)
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, scale := range []any{nil, []float64{5, 1}} {
		doc["scale"] = scale
		b, _ := json.Marshal(doc)
		if _, err := ReadModel(bytes.NewReader(b), "m.json"); !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "scale") {
			t.Errorf("scale %v: %v", scale, err)
		}
	}
}
