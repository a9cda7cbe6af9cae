package bandit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPolicyFileRoundTrip(t *testing.T) {
	w := NewWorld(3)
	events := simulateEvents(t, w, uniform(t, w, 3), 8, 300)
	p, err := Fit(context.Background(), events, worldFZ(t, w), DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := p.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	q, err := ReadPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if q.ID() != p.ID() || q.Trained().Records != len(events) {
		t.Fatalf("loaded id %s records %d, want %s and %d", q.ID(), q.Trained().Records, p.ID(), len(events))
	}
	for i, c := range w.Contexts() {
		req := PageRequest{ID: "x" + itoa(i), Context: c, Rows: w.Rows, Titles: []TitleArtwork{{Title: "t02", Artworks: w.ArtworkIDs("t02")}}}
		a, _ := p.DecidePage(req)
		b, err := q.DecidePage(req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Rows.Chosen, b.Rows.Chosen) || a.Rows.Propensity != b.Rows.Propensity || a.Artwork[0].Chosen[0] != b.Artwork[0].Chosen[0] {
			t.Fatalf("context %v: trained and loaded policies decide differently", c)
		}
	}
	// A retrained policy is another version.
	r, err := Fit(context.Background(), events[:len(events)/2], worldFZ(t, w), DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() == p.ID() {
		t.Error("policies trained on different data share an id")
	}
}

func TestLoadPolicyRefusesOtherFiles(t *testing.T) {
	w := NewWorld(1)
	good, err := json.Marshal(uniform(t, w, 1))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	for name, c := range map[string]struct {
		text string
		is   error
	}{
		"not json":       {"hello", ErrNotPolicy},
		"other document": {`{"kind":"baton.endpoint","version":1}`, ErrNotPolicy},
		"a list":         {`[1,2]`, ErrNotPolicy},
		"newer version":  {edit(`"version":1`, `"version":2`), ErrPolicyVersion},
		"edited":         {edit(`"epsilon":1`, `"epsilon":0.5`), nil},
		"bad epsilon":    {edit(`"epsilon":1`, `"epsilon":0`), ErrParams},
		"unknown field":  {edit(`"algorithm"`, `"extra":1,"algorithm"`), nil},
		"bad feature":    {edit(`"type":"bucket"`, `"type":"cube"`), ErrContext},
	} {
		_, err := LoadPolicy(strings.NewReader(c.text), "p.json")
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if !isInvalid(err) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want invalid input (%v)", name, err, c.is)
		}
		if !strings.Contains(err.Error(), "p.json") {
			t.Errorf("%s: %v does not name the file", name, err)
		}
	}
	if _, err := ReadPolicyFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFeaturizerEncodes(t *testing.T) {
	fz, err := NewFeaturizer([]Feature{
		{Name: "market", Type: Category, Values: []string{"A", "B"}},
		{Name: "hour", Type: Bucket, Bounds: []float64{6, 12}},
		{Name: "age", Type: Number, Center: 30, Scale: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, fz.Dim())
	for _, c := range []struct {
		attrs map[string]any
		want  []float64
	}{
		{map[string]any{"market": "B", "hour": 6, "age": 50.0}, []float64{1, 0, 1, 0, 1, 0, 2}},
		{map[string]any{"market": "Z", "hour": "5.5", "other": "x"}, []float64{1, 0, 0, 1, 0, 0, 0}},
		{map[string]any{"hour": json.Number("12"), "age": "20"}, []float64{1, 0, 0, 0, 0, 1, -1}},
	} {
		if err := fz.Encode(c.attrs, x); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x, c.want) {
			t.Errorf("%v: %v, want %v", c.attrs, x, c.want)
		}
	}
	if err := fz.Encode(map[string]any{"age": "old"}, x); !errors.Is(err, ErrContext) || !strings.Contains(err.Error(), `"age"`) {
		t.Errorf("a text age: %v, want ErrContext naming age", err)
	}
	for name, fs := range map[string][]Feature{
		"twice":       {{Name: "a", Type: Number, Scale: 1}, {Name: "a", Type: Number, Scale: 1}},
		"bounds":      {{Name: "a", Type: Bucket, Bounds: []float64{2, 1}}},
		"no values":   {{Name: "a", Type: Category}},
		"value twice": {{Name: "a", Type: Category, Values: []string{"x", "x"}}},
		"scale":       {{Name: "a", Type: Number}},
		"type":        {{Name: "a", Type: "x"}},
	} {
		if _, err := NewFeaturizer(fs); !errors.Is(err, ErrContext) {
			t.Errorf("%s: %v, want ErrContext", name, err)
		}
	}
}

func TestInferFeaturizer(t *testing.T) {
	ev := func(where string, c map[string]any) Event {
		return Event{Decision: Decision{Context: c}, Where: where}
	}
	events := []Event{
		ev("f:1", map[string]any{"market": "B", "hour": 3.0, "age": 20.0, "member": "m1"}),
		ev("f:2", map[string]any{"market": "A", "hour": 20.0, "age": 40.0, "member": "m2"}),
	}
	fz, err := InferFeaturizer(events, InferOptions{Buckets: map[string][]float64{"hour": {6, 12, 18}}, Ignore: []string{"member"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(fz.Features())
	want := `[{"name":"age","type":"number","center":30,"scale":10},{"name":"hour","type":"bucket","bounds":[6,12,18]},{"name":"market","type":"category","values":["A","B"]}]`
	if string(got) != want {
		t.Errorf("features %s\nwant %s", got, want)
	}
	events = append(events, ev("f:3", map[string]any{"age": "old"}))
	if _, err := InferFeaturizer(events, InferOptions{}); !errors.Is(err, ErrContext) || !strings.Contains(err.Error(), "f:3") {
		t.Errorf("mixed types: %v, want ErrContext naming f:3", err)
	}
}

func FuzzLoadPolicy(f *testing.F) {
	w := NewWorld(1)
	fz, err := w.Featurizer()
	if err != nil {
		f.Fatal(err)
	}
	l, err := NewLearner(fz, DefaultParams())
	if err != nil {
		f.Fatal(err)
	}
	if err := l.Observe(Decision{ID: "a", Kind: Artwork, Title: "t00", Chosen: []string{"t00-a1"}, Context: map[string]any{"market": "A", "hour": 3}}, 1); err != nil {
		f.Fatal(err)
	}
	p, err := l.Policy()
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"kind":"baton.bandit.policy","version":1}`))
	f.Add([]byte(`{"kind":"baton.bandit.policy","version":1,"algorithm":"linucb","params":{"alpha":1,"epsilon":0.5,"lambda":1,"seed":1},"features":[],"arms":[{"kind":"row_order","arm":"r","n":1,"a":[0],"b":[1]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := LoadPolicy(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			if !isInvalid(err) {
				t.Fatalf("refused without being invalid input: %v", err)
			}
			return
		}
		// A policy that loads decides, and saves to what it read.
		if _, err := p.Decide(Request{ID: "x", Kind: RowOrder, Arms: []string{"r", "s"}}); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if q, err := LoadPolicy(bytes.NewReader(again), "again.json"); err != nil || q.ID() != p.ID() {
			t.Fatalf("a loaded policy does not reload: %v", err)
		}
	})
}
