package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// personalizedHarness is a server with a personalized recommend endpoint
// "home" (popularity rows, a bandit policy over market, two artworks for
// the first title of each row) and a plain one, "plain"; it answers the
// harness and a member the model knows.
func personalizedHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t, Options{})
	ctx := context.Background()
	w, err := rec.Synthesize(rec.Synth{Seed: 5, Members: 300, Titles: 200, Interactions: 300 * 25})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rec.Train(ctx, rec.KindPopularity, w.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	if err := m.Save(&mb); err != nil {
		t.Fatal(err)
	}
	modelVersion(t, h, "rec-pop", mb.String(), store.ModelCanary, store.ModelProduction)
	fz, err := bandit.NewFeaturizer([]bandit.Feature{{Name: "market", Type: bandit.Category, Values: []string{"US", "GB"}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bandit.NewPolicy(fz, bandit.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := json.Marshal(pol)
	modelVersion(t, h, "rec-bandit", string(pb), store.ModelCanary, store.ModelProduction)
	eps := []serve.Endpoint{
		{Name: "home", Kind: serve.KindRecommend, Model: "rec-pop", Fallback: serve.Fallback{Static: []any{}},
			Recommend: &serve.RecommendConfig{Rows: []serve.RowConfig{{Type: serve.RowTopPicks}, {Type: serve.RowTrending}},
				Personalize: &serve.Personalize{Model: "rec-bandit", Artworks: 2, ArtworkItems: 1}}},
		{Name: "plain", Kind: serve.KindRecommend, Model: "rec-pop", Fallback: serve.Fallback{Static: []any{}},
			Recommend: &serve.RecommendConfig{Rows: []serve.RowConfig{{Type: serve.RowTopPicks}}}},
	}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	return h, w.Data.Members[0].ID
}

// A personalized recommend endpoint through the API: the page carries its
// decision, the decisions land in the endpoint's decision log (the page's
// context once, then its decisions naming it), rewards posted for them
// join them there, and bad rewards are refused whole.
func TestPersonalizedPageLogsDecisionsAndRewards(t *testing.T) {
	t.Parallel()
	h, member := personalizedHarness(t)
	ctx := context.Background()
	r := h.do(t, "POST", "/api/v1/predict/home", map[string]any{"key": member, "attributes": map[string]any{"market": "US", "device": "tv"}}, "")
	var resp struct {
		Path       string `json:"path"`
		Prediction struct {
			Rows     []serve.PageRow     `json:"rows"`
			Decision *serve.PageDecision `json:"decision"`
		} `json:"prediction"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || r.code != 200 || resp.Prediction.Decision == nil {
		t.Fatalf("predict: %d %s", r.code, r.body)
	}
	id := resp.Prediction.Decision.ID
	logPath := filepath.Join(h.dir, "logs", "bandit", "home.jsonl")
	before, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The page's context, then one row order and one artwork per row (the
	// rows do not repeat titles), which name the page instead of
	// repeating its context.
	if n := bytes.Count(before, []byte("\n")); n != 4 {
		t.Fatalf("the log holds %d lines after one page, want 4:\n%s", n, before)
	}
	if n := bytes.Count(before, []byte(`"device":"tv"`)); n != 1 {
		t.Fatalf("the page's context is in the log %d times, want once:\n%s", n, before)
	}
	for _, c := range []struct {
		path, body, want string
		code             int
	}{
		{"/api/v1/endpoints/home/rewards", `[{"id":"` + id + `/rows","reward":1},{"id":"","reward":1}]`, "[1].id", 400},
		{"/api/v1/endpoints/home/rewards", `[{"id":"x/rows"}]`, "[0].reward: missing", 400},
		{"/api/v1/endpoints/home/rewards", `[{"id":"x/rows","reward":1e308}]`, "[0].reward: reward 1e+308: must be within", 400},
		{"/api/v1/endpoints/home/rewards", `[]`, "0 rewards", 400},
		{"/api/v1/endpoints/home/rewards", `{"id":"x","reward":1}`, "", 400},
		{"/api/v1/endpoints/plain/rewards", `[{"id":"x/rows","reward":1}]`, "does not personalize", 400},
		{"/api/v1/endpoints/nope/rewards", `[{"id":"x/rows","reward":1}]`, "unknown endpoint", 404},
	} {
		got := h.do(t, "POST", c.path, c.body, "")
		if got.code != c.code || !strings.Contains(string(got.body), c.want) {
			t.Errorf("%s %s: %d %s, want %d %q", c.path, c.body, got.code, got.body, c.code, c.want)
		}
	}
	if after, _ := os.ReadFile(logPath); !bytes.Equal(after, before) {
		t.Fatalf("refused rewards were written:\n%s", after[len(before):])
	}
	if got := h.do(t, "POST", "/api/v1/endpoints/home/rewards", `[{"id":"`+id+`/rows","reward":1}]`, ""); got.code != 200 {
		t.Fatalf("reward: %d %s", got.code, got.body)
	}
	lg, err := bandit.ReadLogFiles(ctx, logPath)
	if err != nil {
		t.Fatal(err)
	}
	rewarded := 0
	for _, e := range lg.Events {
		if e.ID == id+"/rows" && e.Reward == 1 && e.Context["device"] == "tv" && e.Context["market"] == "US" {
			rewarded++
		}
	}
	if rewarded != 1 || lg.Pages != 1 || len(lg.Malformed) != 0 {
		t.Fatalf("the reward did not join its decision, with the page's context: %+v", lg)
	}
}

// A request's attributes are bounded (keys, key and value sizes), and so
// are the features given to an endpoint that personalizes: they are the
// logged context. A 0.9 MB attributes object was accepted and written
// into each of the page's decision lines (11.7 MB for one request); now
// it is refused with the limit and the field, and nothing is logged.
func TestPersonalizedPageBoundsItsContext(t *testing.T) {
	t.Parallel()
	h, member := personalizedHarness(t)
	many := map[string]any{}
	for i := range 9000 {
		many[fmt.Sprintf("attribute_%05d", i)] = strings.Repeat("v", 80)
	}
	huge, _ := json.Marshal(map[string]any{"key": member, "attributes": many})
	if len(huge) < 900_000 || len(huge) > 1<<20 {
		t.Fatalf("the request is %d bytes, want about 0.9 MB (under the body limit)", len(huge))
	}
	long := strings.Repeat("k", serve.MaxAttributeKey+1)
	for _, c := range []struct {
		name  string
		body  any
		field string
		want  string
	}{
		{"0.9 MB of attributes", string(huge), "attributes", "9000 keys: at most 64"},
		{"a long value", map[string]any{"key": member, "attributes": map[string]any{"market": "US", "note": strings.Repeat("x", 900_000)}},
			"attributes.note", "a value of 900000 bytes: at most 256"},
		{"a nested value", map[string]any{"key": member, "attributes": map[string]any{"deep": map[string]any{"x": strings.Repeat("y", 300)}}},
			"attributes.deep", "a value of 308 bytes: at most 256"},
		{"a long key", map[string]any{"key": member, "attributes": map[string]any{long: 1}}, "attributes", "a key of 65 bytes"},
		{"features of a personalized page", map[string]any{"key": member, "features": map[string]any{"note": strings.Repeat("x", 300)}},
			"features.note", "a value of 300 bytes: at most 256"},
	} {
		r := h.do(t, "POST", "/api/v1/predict/home", c.body, "")
		var body struct{ Error, Field string }
		_ = json.Unmarshal(r.body, &body)
		if r.code != 400 || body.Field != c.field || !strings.Contains(body.Error, c.want) {
			t.Errorf("%s: %d %.300s, want 400 on field %s saying %q", c.name, r.code, r.body, c.field, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "logs", "bandit", "home.jsonl")); !os.IsNotExist(err) {
		t.Fatalf("refused requests wrote the decision log: %v", err)
	}
	// The limits are the request's: a plain endpoint takes the same
	// attributes limits, and features as they are.
	if r := h.do(t, "POST", "/api/v1/predict/plain", string(huge), ""); r.code != 400 {
		t.Fatalf("plain endpoint, 0.9 MB of attributes: %d %.300s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/predict/plain", map[string]any{"key": member, "features": map[string]any{"note": strings.Repeat("x", 300)}}, ""); r.code != 200 {
		t.Fatalf("plain endpoint, a long feature: %d %.300s", r.code, r.body)
	}
}

// The decision log rotates by size, keeping the newest files: every
// decision of the files kept reads back with its page's context and its
// reward (posted after a rotation, in another file), no page is split
// across files, and no file passes the limit.
func TestDecisionLogRotates(t *testing.T) {
	t.Parallel()
	d := newDecisionLog(t.TempDir())
	d.maxBytes, d.keep = 4096, 3
	defer d.close()
	fz, err := bandit.NewFeaturizer([]bandit.Feature{{Name: "market", Type: bandit.Category, Values: []string{"US", "GB"}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bandit.NewPolicy(fz, bandit.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	decide := func(i int) bandit.Page {
		p, err := pol.DecidePage(bandit.PageRequest{ID: fmt.Sprintf("p%03d", i), At: at.Add(time.Duration(i) * time.Second),
			Context: map[string]any{"market": "US", "n": i}, Rows: []string{"a", "b", "c"},
			Titles: []bandit.TitleArtwork{{Title: "t1", Artworks: []string{"t1-a0", "t1-a1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A small run: every decision is kept, each rewarded one page later.
	const pages = 12
	for i := range pages {
		if err := d.decisions("home", decide(i)); err != nil {
			t.Fatal(err)
		}
		if err := d.append("home", func(lw *bandit.LogWriter) error {
			return lw.Reward(bandit.Reward{ID: bandit.PageRowsID(fmt.Sprintf("p%03d", i)), Value: 1, At: at.Add(time.Hour)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := d.path("home")
	rotated, err := bandit.RotatedFiles(path)
	if err != nil || len(rotated) == 0 {
		t.Fatalf("rotated files %v %v: 12 pages of about 900 bytes in files of 4 KiB rotate", rotated, err)
	}
	lg, err := bandit.ReadLogFiles(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(lg.Events) != pages || len(lg.Unrewarded) != pages || len(lg.Malformed) != 0 || lg.Pages != pages {
		t.Fatalf("%d events, %d unrewarded, %d pages, malformed %v: want every page's row order rewarded, its artwork not, nothing malformed",
			len(lg.Events), len(lg.Unrewarded), lg.Pages, lg.Malformed)
	}
	for _, e := range lg.Events {
		if e.Context["market"] != "US" {
			t.Fatalf("%s lost its page's context: %+v", e.Where, e.Decision)
		}
	}
	// A long run: the files kept stay within the limit and the count.
	for i := pages; i < 200; i++ {
		if err := d.decisions("home", decide(i)); err != nil {
			t.Fatal(err)
		}
	}
	if rotated, _ = bandit.RotatedFiles(path); len(rotated) != d.keep {
		t.Fatalf("rotated files %v, want %d", rotated, d.keep)
	}
	for _, f := range append(rotated, path) {
		st, err := os.Stat(f)
		if err != nil || st.Size() > d.maxBytes {
			t.Fatalf("%s: %v, %d bytes, limit %d", f, err, st.Size(), d.maxBytes)
		}
	}
	lg, err = bandit.ReadLogFiles(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(lg.Malformed) != 0 || lg.Pages == 0 || len(lg.Unrewarded) != 2*lg.Pages {
		t.Fatalf("after rotations: %d pages, %d decisions, malformed %v: every decision kept must read back with its page", lg.Pages, len(lg.Unrewarded), lg.Malformed)
	}
}
