package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/search"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
)

// recommendSetup trains an ALS model (64 factors) and the popularity
// model on a planted world of 10,000 titles, streams each member's plays
// into the online store (the last title played is the anchor of "Because
// You Watched"), and applies a recommend endpoint of four rows of 20
// titles with diversity and new-creator re-ranking. It returns the
// members' ids.
func recommendSetup(b *testing.B, h *harness) []string {
	b.Helper()
	ctx := context.Background()
	w, err := rec.Synthesize(rec.Synth{Seed: 3, Members: 5000, Titles: 10_000, Interactions: 5000 * 30})
	if err != nil {
		b.Fatal(err)
	}
	for kind, params := range map[string]map[string]string{
		rec.KindALS:        {"factors": "64", "iterations": "3"},
		rec.KindPopularity: {},
	} {
		m, err := rec.Train(ctx, kind, w.Data, params)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			b.Fatal(err)
		}
		modelVersion(b, h, "rec-"+kind, buf.String(), store.ModelCanary, store.ModelProduction)
	}
	applyFeaturesTB(b, h, `entities: [{name: member, key: member_id}]
sources: [{name: plays, entity: member, timestamp: ts, fields: {title_id: string, minutes: float}}]
features:
  - {name: last_title, source: plays, aggregate: last, field: title_id, window: 30d}
  - {name: plays_1d, source: plays, aggregate: count, window: 24h}
`)
	now := time.Now()
	var lines strings.Builder
	ids := make([]string, len(w.Data.Members))
	for i, m := range w.Data.Members {
		ids[i] = m.ID
		for j := range 3 {
			t := w.Data.Titles[(i*7+j*13)%len(w.Data.Titles)]
			fmt.Fprintf(&lines, `{"member_id":%q,"ts":%d,"title_id":%q,"minutes":30}`+"\n", m.ID, now.Add(-time.Duration(3-j)*time.Minute).Unix(), t.ID)
		}
	}
	if _, err := h.s.features.Ingest(ctx, "plays", strings.NewReader(lines.String())); err != nil {
		b.Fatal(err)
	}
	eps := []serve.Endpoint{{Name: "home", Kind: serve.KindRecommend, Model: "rec-als", Features: []string{"last_title", "plays_1d"},
		Timeout: serve.Duration(50 * time.Millisecond), MinConfidence: 0.5, Fallback: serve.Fallback{Model: "rec-popularity"},
		Recommend: &serve.RecommendConfig{AnchorFeature: "last_title",
			Rows:   []serve.RowConfig{{Type: serve.RowTopPicks}, {Type: serve.RowBecauseYouWatched}, {Type: serve.RowTrending}, {Type: serve.RowNew, Within: serve.Duration(60 * 24 * time.Hour)}},
			Rerank: serve.Rerank{Diversity: 0.3, NewCreatorShare: 0.2}}}}
	if r := h.do(b, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		b.Fatalf("apply endpoints: %d %s", r.code, r.body)
	}
	return ids
}

// BenchmarkRecommend is a page of four rows of 20 titles from streaming
// features, a 64-factor ALS model over 10,000 titles and re-ranking,
// through the real server at 1,000 requests a second (open loop, 5 s), for
// members the model knows. Target: p99 under 5 ms.
func BenchmarkRecommend(b *testing.B) {
	h := newHarness(b, Options{})
	ids := recommendSetup(b, h)
	b.ResetTimer()
	from := time.Now()
	lat, paths, failed := openLoop(b, h, "/api/v1/predict/home", 1000, 5*time.Second, func(i int) string {
		return fmt.Sprintf(`{"key":%q}`, ids[i%len(ids)])
	})
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	if paths["model/model"] < len(lat)/2 {
		b.Fatalf("the model served only %d of %d: %v", paths["model/model"], len(lat), paths)
	}
	reportLatency(b, h, "home", from, lat)
	b.ReportMetric(float64(paths["model/model"])/float64(len(lat)), "model-share")
}

// BenchmarkRecommendFallback is the same for members the model does not
// know: the confidence gate sends every request to the popularity page.
// Target: p99 under 2 ms.
func BenchmarkRecommendFallback(b *testing.B) {
	h := newHarness(b, Options{})
	recommendSetup(b, h)
	b.ResetTimer()
	from := time.Now()
	lat, paths, failed := openLoop(b, h, "/api/v1/predict/home", 1000, 5*time.Second, func(i int) string {
		return fmt.Sprintf(`{"key":"new-%d","attributes":{"market":"US"}}`, i)
	})
	b.StopTimer()
	if failed > 0 || paths["fallback/low_confidence"] != len(lat) {
		b.Fatalf("%d failed; paths %v", failed, paths)
	}
	reportLatency(b, h, "home", from, lat)
}

// searchSetup indexes a synthetic catalog of 10,000 titles, trains a
// re-ranker on its click log and applies a search endpoint "search" that
// serves it; it returns the data set and its members' ids.
func searchSetup(b *testing.B, h *harness) (search.Synthetic, []string) {
	b.Helper()
	ctx := context.Background()
	syn := search.Synthesize(search.SynthOptions{Titles: 10_000, Members: 1000, Sessions: 5000, Seed: 2})
	var cat bytes.Buffer
	if err := search.WriteCatalog(&cat, syn.Titles); err != nil {
		b.Fatal(err)
	}
	ix, err := search.NewIndex(ctx, syn.Titles, "")
	if err != nil {
		b.Fatal(err)
	}
	m, err := search.Train(ctx, ix, syn.Interactions, syn.Clicks, search.TrainOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var mb bytes.Buffer
	if err := m.Write(&mb); err != nil {
		b.Fatal(err)
	}
	path := runArtifact(b, h, "synth", "catalog.csv", cat.Bytes())
	modelVersion(b, h, "search-rerank", mb.String(), store.ModelCanary, store.ModelProduction)
	eps := []serve.Endpoint{{Name: "search", Kind: serve.KindSearch, Model: "search-rerank", Search: &serve.SearchConfig{Catalog: path}}}
	if r := h.do(b, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		b.Fatalf("apply endpoints: %d %s", r.code, r.body)
	}
	members := map[string]bool{}
	var ids []string
	for _, it := range syn.Interactions {
		if !members[it.Member] {
			members[it.Member] = true
			ids = append(ids, it.Member)
		}
	}
	return syn, ids
}

// BenchmarkSearch is a search endpoint over 10,000 titles (BM25 on bleve,
// 100 candidates re-ranked by a trained logistic re-ranker, 20 hits)
// through the real server at 500 queries a second (open loop, 5 s), each
// query a word of the catalog's vocabulary and a member. Target: p99
// under 5 ms.
func BenchmarkSearch(b *testing.B) {
	h := newHarness(b, Options{})
	syn, ids := searchSetup(b, h)
	b.ResetTimer()
	from := time.Now()
	lat, paths, failed := openLoop(b, h, "/api/v1/predict/search", 500, 5*time.Second, func(i int) string {
		return fmt.Sprintf(`{"query":%q,"key":%q}`, syn.Words[i%50], ids[i%len(ids)])
	})
	b.StopTimer()
	if failed > 0 || paths["model/model"] != len(lat) {
		b.Fatalf("%d failed; paths %v", failed, paths)
	}
	reportLatency(b, h, "search", from, lat)
}

// runArtifact stores b as artifact NAME of a finished one-task step of a
// new run and returns its path, RUN/STEP/NAME.
func runArtifact(t testing.TB, h *harness, step, name string, b []byte) string {
	t.Helper()
	ctx := context.Background()
	v, _, err := h.st.PutFlowVersion(ctx, store.FlowVersion{Flow: "synth", Digest: "d", Spec: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.st.CreateRun(ctx, store.NewRun{Flow: "synth", FlowVersion: v.Version, Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.AcquireRun(ctx, r.ID, "bench", time.Hour); err != nil {
		t.Fatal(err)
	}
	d, n, err := h.blobs.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k := store.TaskKey{RunID: r.ID, Step: step}
	zero := 0
	if err := h.st.Apply(ctx, "bench", &store.Batch{
		Steps:     []store.StepChange{{RunID: r.ID, Name: step, Status: store.TaskSucceeded, NumTasks: 1, At: now}},
		NewTasks:  []store.NewTasks{{RunID: r.ID, Step: step, Count: 1, ReadyAt: now}},
		Tasks:     []store.TaskChange{{TaskKey: k, Status: store.TaskSucceeded, Attempts: 1, StartedAt: now, FinishedAt: now, ExitCode: &zero}},
		Artifacts: []store.Artifact{{TaskKey: k, Name: name, Digest: d, Size: n, CreatedAt: now}},
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d/%s/%s", r.ID, step, name)
}

// BenchmarkPredictHandler is the server's own work for one request,
// without a client, a connection or a wait for a core: the API's handler
// (guard, token, decoding, Predict, the answer) called in process, for
// the logistic endpoint of BenchmarkServing, the pages of
// BenchmarkRecommend (a member the model knows, and the popularity page)
// and the search of BenchmarkSearch.
func BenchmarkPredictHandler(b *testing.B) {
	h := newHarness(b, Options{})
	ids := recommendSetup(b, h)
	servingSetup(b, h, logisticSpec, 20*time.Millisecond)
	syn, sids := searchSetup(b, h)
	handler := h.s.Handler()
	// A stored token, as a deployment's clients send (the home's own is
	// for the CLI on the same home): looked up in the store per request.
	viewer, vt, err := token.New("bench", store.RoleViewer)
	if err != nil {
		b.Fatal(err)
	}
	if err := h.st.CreateToken(context.Background(), vt); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		body       func(i int) string
		token      string
	}{
		{"logistic", "/api/v1/predict/churn", func(i int) string { return fmt.Sprintf(`{"key":"m%d"}`, i%1000) }, ""},
		{"logistic-stored-token", "/api/v1/predict/churn", func(i int) string { return fmt.Sprintf(`{"key":"m%d"}`, i%1000) }, viewer},
		{"page", "/api/v1/predict/home", func(i int) string { return fmt.Sprintf(`{"key":%q}`, ids[i%len(ids)]) }, ""},
		{"fallback", "/api/v1/predict/home", func(i int) string { return fmt.Sprintf(`{"key":"new-%d","attributes":{"market":"US"}}`, i) }, ""},
		{"search", "/api/v1/predict/search", func(i int) string { return fmt.Sprintf(`{"query":%q,"key":%q}`, syn.Words[i%50], sids[i%len(sids)]) }, ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := httptest.NewRequest("POST", h.url+c.path, strings.NewReader(c.body(i)))
				req.Header.Set("Content-Type", "application/json")
				tok := h.s.homeToken
				if c.token != "" {
					tok = c.token
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				i++
			}
		})
	}
}
