package server

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// A personalized recommend endpoint through the API: the page carries its
// decision, the decisions land in the endpoint's decision log, rewards
// posted for them join them there, and bad rewards are refused whole.
func TestPersonalizedPageLogsDecisionsAndRewards(t *testing.T) {
	t.Parallel()
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
	r := h.do(t, "POST", "/api/v1/predict/home", map[string]any{"key": w.Data.Members[0].ID, "attributes": map[string]any{"market": "US"}}, "")
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
	// One row order and one artwork per row (the rows do not repeat titles).
	if n := bytes.Count(before, []byte("\n")); n != 3 {
		t.Fatalf("the log holds %d lines after one page, want 3:\n%s", n, before)
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
		if e.ID == id+"/rows" && e.Reward == 1 {
			rewarded++
		}
	}
	if rewarded != 1 {
		t.Fatalf("the reward did not join its decision: %+v", lg)
	}
}
