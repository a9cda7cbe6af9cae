package serve

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/search"
	"github.com/baton-ml/baton/internal/store"
)

// runArtifact stores b as artifact NAME of a one-task step of a new run
// and returns its path, RUN/STEP/NAME.
func (f *fixture) runArtifact(t testing.TB, step, name string, b []byte) string {
	t.Helper()
	ctx := context.Background()
	v, _, err := f.st.PutFlowVersion(ctx, store.FlowVersion{Flow: "synth", Digest: "d", Spec: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.st.CreateRun(ctx, store.NewRun{Flow: "synth", FlowVersion: v.Version, Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AcquireRun(ctx, r.ID, "me", time.Hour); err != nil {
		t.Fatal(err)
	}
	d, n, err := f.blobs.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k := store.TaskKey{RunID: r.ID, Step: step}
	zero := 0
	if err := f.st.Apply(ctx, "me", &store.Batch{
		Steps:     []store.StepChange{{RunID: r.ID, Name: step, Status: store.TaskSucceeded, NumTasks: 1, At: now}},
		NewTasks:  []store.NewTasks{{RunID: r.ID, Step: step, Count: 1, ReadyAt: now}},
		Tasks:     []store.TaskChange{{TaskKey: k, Status: store.TaskSucceeded, Attempts: 1, StartedAt: now, FinishedAt: now, ExitCode: &zero}},
		Artifacts: []store.Artifact{{TaskKey: k, Name: name, Digest: d, Size: n, CreatedAt: now}},
	}); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(r.ID, 10) + "/" + step + "/" + name
}

// searchFixture indexes a planted catalog, trains the re-ranker on its
// click log and serves both behind a search endpoint.
func searchFixture(t testing.TB) (*fixture, search.Synthetic) {
	t.Helper()
	ctx := context.Background()
	syn := search.Synthesize(search.SynthOptions{Titles: 2000, Members: 300, Sessions: 3000, Seed: 11})
	var cat bytes.Buffer
	if err := search.WriteCatalog(&cat, syn.Titles); err != nil {
		t.Fatal(err)
	}
	ix, err := search.NewIndex(ctx, syn.Titles, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := search.Train(ctx, ix, syn.Interactions, syn.Clicks, search.TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	if err := m.Write(&mb); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t.(*testing.T))
	path := f.runArtifact(t, "synth", "catalog.csv", cat.Bytes())
	f.versionBytes(t, "search-rerank", mb.Bytes(), store.ModelCanary, store.ModelProduction)
	f.endpoint(t.(*testing.T), Endpoint{Name: "search", Kind: KindSearch, Model: "search-rerank", Search: &SearchConfig{Catalog: path, Items: 10}})
	return f, syn
}

// versionBytes registers a model version whose artifact is b.
func (f *fixture) versionBytes(t testing.TB, model string, b []byte, state ...store.ModelState) {
	t.Helper()
	ctx := context.Background()
	d, n, err := f.blobs.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/train/model", Digest: d, Size: n, RunID: 1}, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range state {
		if _, err := f.reg.Transition(ctx, model, v.Version, s, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSearchEndpoint(t *testing.T) {
	f, syn := searchFixture(t)
	ctx := context.Background()
	q := syn.Words[3]
	resp, err := f.svc.Predict(ctx, "search", Request{Query: q, Key: syn.Interactions[0].Member})
	if err != nil {
		t.Fatal(err)
	}
	ans, ok := resp.Prediction.(SearchAnswer)
	if !ok || resp.Path != PathModel || resp.Model != "search-rerank" || len(ans.Hits) == 0 || len(ans.Hits) > 10 {
		t.Fatalf("%+v", resp)
	}
	for _, h := range ans.Hits {
		if h.Path != search.PathRerank || h.Score == nil || h.Why == "" {
			t.Fatalf("a re-ranked hit: %+v", h)
		}
	}
	// No query: a bad request; no key is fine (no member affinity).
	if _, err := f.svc.Predict(ctx, "search", Request{Key: "m1"}); err == nil || !strings.Contains(err.Error(), `needs "query"`) {
		t.Fatalf("no query: %v", err)
	}
	// Nor is a blank one: it used to reach the index, whose refusal
	// counted as the model's error and answered 200 with no hits
	// (path fallback, reason error: a canary's error rate).
	if resp, err := f.svc.Predict(ctx, "search", Request{Query: " \t "}); err == nil || !strings.Contains(err.Error(), `needs "query"`) {
		t.Fatalf("a blank query: %+v %v", resp, err)
	}
	if resp, err := f.svc.Predict(ctx, "search", Request{Query: q}); err != nil || resp.Path != PathModel {
		t.Fatalf("anonymous: %+v %v", resp, err)
	}
	// A query too long for a search box is the caller's mistake (400),
	// refused before the index spends seconds and memory on it.
	var br *BadRequest
	long := strings.Repeat("w ", search.MaxQueryBytes)
	if _, err := f.svc.Predict(ctx, "search", Request{Query: long}); !errors.As(err, &br) || !strings.Contains(err.Error(), "at most 512 bytes") {
		t.Fatalf("a query of %d bytes: %v", len(long), err)
	}
}

// With the re-ranker not servable, BM25 answers: the deterministic path.
func TestSearchFallsBackToBM25(t *testing.T) {
	f, syn := searchFixture(t)
	f.versionBytes(t, "search-rerank", []byte(`{"kind":"logistic","bias":0,"weights":{"x":1}}`))
	ctx := context.Background()
	v, err := f.reg.Resolve(ctx, "search-rerank", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		if _, err := f.reg.Transition(ctx, "search-rerank", v.Version, s, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := f.svc.Predict(ctx, "search", Request{Query: syn.Words[0]})
	if err != nil {
		t.Fatal(err)
	}
	ans := resp.Prediction.(SearchAnswer)
	if resp.Path != PathFallback || resp.Reason != ReasonError || resp.Model != "bm25" || !strings.Contains(resp.Detail, "not a search re-ranker") || len(ans.Hits) == 0 {
		t.Fatalf("%+v", resp)
	}
	for i, h := range ans.Hits {
		if h.Path != search.PathBM25 || h.BM25Rank != i+1 {
			t.Fatalf("BM25 order: %+v", ans.Hits)
		}
	}
}

func TestSearchSpecProblems(t *testing.T) {
	for _, c := range []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{Name: "s", Kind: KindSearch, Model: "m"}, "at.search: a search endpoint needs search.catalog"},
		{Endpoint{Name: "s", Kind: KindSearch, Model: "m", Search: &SearchConfig{Catalog: "catalog.csv"}}, "at.search.catalog"},
		{Endpoint{Name: "s", Kind: KindSearch, Model: "m", Search: &SearchConfig{Catalog: "1/a/c.csv", Items: 50, Candidates: 20}}, "at.search.items: 50: no more than candidates"},
		{Endpoint{Name: "s", Model: "m", Fallback: Fallback{Static: 0}, Search: &SearchConfig{Catalog: "1/a/c.csv"}}, "at.search: only an endpoint of kind search"},
	} {
		if errs := c.e.Problems("at"); !strings.Contains(errs.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, errs)
		}
	}
	if errs := (Endpoint{Name: "s", Kind: KindSearch, Model: "m", Search: &SearchConfig{Catalog: "1/a/c.csv"}}).Problems("at"); len(errs) != 0 {
		t.Fatalf("a search endpoint needs no fallback (BM25 is): %v", errs)
	}
}

// Applying checks that the catalog artifact exists.
func TestSearchApplyChecksCatalog(t *testing.T) {
	f, _ := searchFixture(t)
	_, err := Apply(context.Background(), f.st, []Endpoint{{Name: "s2", Kind: KindSearch, Model: "search-rerank", Search: &SearchConfig{Catalog: "1/synth/nope.csv"}}})
	if err == nil || !strings.Contains(err.Error(), "search.catalog") {
		t.Fatalf("%v", err)
	}
}
