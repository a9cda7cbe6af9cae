package quality

import (
	"bytes"
	"context"
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
