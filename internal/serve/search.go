package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/search"
	"github.com/baton-ml/baton/internal/store"
)

// KindSearch is an endpoint answering keyword queries over a title
// catalog: BM25 retrieval (the deterministic fallback, always there) re-ranked
// by the endpoint's model, a re-ranker trained by baton search train.
const KindSearch = "search"

// SearchConfig is how a search endpoint retrieves.
type SearchConfig struct {
	// Catalog is the run artifact (RUN/STEP/NAME) of the catalog CSV whose
	// titles are indexed (title,name,genres,creator,new_creator,released
	// [,markets][,description]).
	Catalog string `json:"catalog" yaml:"catalog"`
	// Candidates is how many titles BM25 hands the re-ranker (default 100);
	// Items how many the answer holds (default 20).
	Candidates int `json:"candidates,omitempty" yaml:"candidates"`
	Items      int `json:"items,omitempty" yaml:"items"`
}

// SearchAnswer is what a search endpoint answers (the response's
// prediction): each hit says which path ranked it (rerank or bm25) and why.
type SearchAnswer struct {
	Query  string       `json:"query"`
	Member string       `json:"member,omitempty"`
	Hits   []search.Hit `json:"hits"`
}

func (c *SearchConfig) problems(at string, add func(field, format string, args ...any)) {
	if _, err := artifact.ParsePath(c.Catalog); err != nil {
		add(at+".catalog", "%q: the catalog CSV as a run artifact, RUN/STEP/NAME (%v)", c.Catalog, err)
	}
	if c.Candidates < 0 || c.Candidates > 1000 {
		add(at+".candidates", "%d: between 1 and 1000", c.Candidates)
	}
	if c.Items < 0 || c.Items > 100 {
		add(at+".items", "%d: between 1 and 100", c.Items)
	}
	if c.Items > 0 && c.Candidates > 0 && c.Items > c.Candidates {
		add(at+".items", "%d: no more than candidates (%d)", c.Items, c.Candidates)
	}
}

// rerankModel is a loaded search re-ranker file. Only a search endpoint
// can serve it (it needs the endpoint's index).
type rerankModel struct{ m *search.Model }

func (rerankModel) Predict(context.Context, Input) (Output, error) {
	return Output{}, fmt.Errorf("a search re-ranker answers queries on a search endpoint (kind: search), not predictions")
}

// loadRerank reads b as a search re-ranker when it is one: a JSON
// document without a kind whose fields are a re-ranker's.
func loadRerank(b []byte) (*rerankModel, bool, error) {
	var probe struct {
		Kind    *string         `json:"kind"`
		Format  *int            `json:"format"`
		Weights json.RawMessage `json:"weights"`
	}
	if json.Unmarshal(b, &probe) != nil || probe.Kind != nil || probe.Format == nil {
		return nil, false, nil
	}
	m, err := search.ReadModel(bytes.NewReader(b), "model")
	if err != nil {
		return nil, true, err
	}
	return &rerankModel{m: m}, true, nil
}

// searchModel answers a search endpoint's queries.
type searchModel struct {
	s     *search.Searcher
	ix    *search.Index
	items int
}

func (m *searchModel) Predict(ctx context.Context, in Input) (Output, error) {
	hits, err := m.s.Search(ctx, in.Query, in.Key, m.items)
	if err != nil {
		return Output{}, err
	}
	if hits == nil {
		hits = []search.Hit{}
	}
	return Output{Prediction: SearchAnswer{Query: in.Query, Member: in.Key, Hits: hits}, Confidence: 1}, nil
}

// searchIndex builds (once per catalog content) the BM25 index of the
// endpoint's catalog artifact.
func (s *Service) searchIndex(ctx context.Context, cfg *SearchConfig) (*search.Index, error) {
	p, err := artifact.ParsePath(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	a, err := artifact.Resolve(ctx, s.d.Store, p)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", cfg.Catalog, err)
	}
	if ix, ok := s.indexes.Load(a.Digest); ok {
		return ix.(*search.Index), nil
	}
	b, err := s.d.Blobs.Read(ctx, a.Digest)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", cfg.Catalog, err)
	}
	titles, err := search.ReadCatalog(bytes.NewReader(b), cfg.Catalog)
	if err != nil {
		return nil, err
	}
	ix, err := search.NewIndex(ctx, titles, "")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: index: %w", cfg.Catalog, err)
	}
	s.indexes.Store(a.Digest, ix)
	return ix, nil
}

// forSearch is v as search endpoint spec serves it over ix: its re-ranker
// on BM25's candidates. A version that is not a re-ranker fails each
// query (and BM25 answers).
func forSearch(spec Endpoint, v *version, ix *search.Index) *version {
	if v == nil {
		return nil
	}
	rm, ok := v.m.(*rerankModel)
	if !ok {
		return &version{v: v.v, m: cannotServe{fmt.Sprintf("model %s version %d is not a search re-ranker (baton search train makes one): a search endpoint cannot serve it", v.v.Model, v.v.Version)}, builtin: true}
	}
	sr, err := search.NewSearcher(ix, rm.m, spec.Search.Candidates)
	if err != nil {
		return &version{v: v.v, m: cannotServe{fmt.Sprintf("model %s version %d: %v", v.v.Model, v.v.Version, err)}, builtin: true}
	}
	return &version{v: v.v, m: &searchModel{s: sr, ix: ix, items: searchItems(spec)}, builtin: true}
}

// bm25Version is a search endpoint's deterministic fallback: BM25 alone.
func bm25Version(spec Endpoint, ix *search.Index) (*version, error) {
	sr, err := search.NewSearcher(ix, nil, spec.Search.Candidates)
	if err != nil {
		return nil, err
	}
	return &version{v: store.ModelVersion{Model: "bm25"}, m: &searchModel{s: sr, ix: ix, items: searchItems(spec)}, builtin: true}, nil
}

func searchItems(spec Endpoint) int {
	if spec.Search.Items > 0 {
		return spec.Search.Items
	}
	return 20
}
