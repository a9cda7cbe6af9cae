// Package search is keyword retrieval over a title catalog with BM25
// (bleve's scorch index, not a hand-written one) as the deterministic
// fallback, re-ranked by a learned logistic model over the retrieval
// score, the title's popularity and the member's affinity to its genres.
//
// The index lives in memory (NewIndex with dir "") or in a folder
// (NewIndex with a dir, OpenIndex): 10,000 titles take well under a
// second to index, so serving rebuilds it in memory from the catalog;
// the folder is for catalogs too large to rebuild at every start.
package search

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	blevesearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/baton-ml/baton/internal/fault"
)

// The files of an index folder: bleve's index and the catalog it was
// built from (the titles' genres and names are not read back from bleve:
// a map lookup is cheaper than loading stored fields on every hit).
const (
	indexDirName   = "bleve"
	catalogFileNam = "catalog.csv"
)

// nameBoost weighs a match in the name above one elsewhere: a word of
// the name says more about a title than one of its description.
const nameBoost = 2

// DefaultCandidates is how many titles retrieval hands the re-ranker.
const DefaultCandidates = 100

// Index is a BM25 index of titles with the titles themselves.
type Index struct {
	bi     bleve.Index
	titles map[string]*Title
	list   []Title
}

// indexMapping indexes the name and the rest (description, genres,
// creator) as text with the standard analyzer (Unicode words, lower case, English stop
// words), scored by BM25.
func indexMapping() mapping.IndexMapping {
	m := bleve.NewIndexMapping()
	m.ScoringModel = index.BM25Scoring
	m.DefaultAnalyzer = standard.Name
	doc := bleve.NewDocumentStaticMapping()
	text := func() *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Store = false
		f.IncludeTermVectors = false
		f.IncludeInAll = false
		return f
	}
	for _, name := range []string{"name", "text"} {
		doc.AddFieldMappingsAt(name, text())
	}
	m.DefaultMapping = doc
	return m
}

// titleDoc is what bleve indexes: the name, and the description, genres
// and creator as one text field (one term lookup less per field per
// query word than four fields: half the query's cost, measured).
type titleDoc struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// NewIndex indexes titles: in memory when dir is "", else in dir (which
// must not exist yet; the catalog is written beside the index, and the
// folder appears whole or not at all).
func NewIndex(ctx context.Context, titles []Title, dir string) (*Index, error) {
	if len(titles) == 0 {
		return nil, fault.Invalidf("catalog", "no titles to index")
	}
	ix := &Index{titles: make(map[string]*Title, len(titles)), list: titles}
	for i := range titles {
		if _, dup := ix.titles[titles[i].ID]; dup {
			return nil, fault.Invalidf("catalog", "title %q twice", titles[i].ID)
		}
		ix.titles[titles[i].ID] = &titles[i]
	}
	var tmp string
	var err error
	if dir == "" {
		ix.bi, err = bleve.NewUsing("", indexMapping(), scorch.Name, scorch.Name, nil)
	} else {
		if _, err := os.Stat(dir); err == nil {
			return nil, fault.Errorf(fault.Conflict, "index folder %s exists already", dir)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".*"); err != nil {
			return nil, fault.Errorf(fault.Invalid, "index folder %s: %w", dir, err) // no parent folder, or not writable
		}
		ix.bi, err = bleve.New(filepath.Join(tmp, indexDirName), indexMapping())
	}
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("create index: %w", err)
	}
	fail := func(err error) (*Index, error) {
		ix.bi.Close()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, err
	}
	const batchSize = 1000
	b := ix.bi.NewBatch()
	for i := range titles {
		if i%batchSize == 0 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
		}
		t := &titles[i]
		if err := b.Index(t.ID, titleDoc{Name: t.Name, Text: t.Description + " " + strings.Join(t.Genres, " ") + " " + t.Creator}); err != nil {
			return fail(fmt.Errorf("index title %q: %w", t.ID, err))
		}
		if b.Size() >= batchSize {
			if err := ix.bi.Batch(b); err != nil {
				return fail(fmt.Errorf("index: %w", err))
			}
			b.Reset()
		}
	}
	if err := ix.bi.Batch(b); err != nil {
		return fail(fmt.Errorf("index: %w", err))
	}
	if tmp == "" {
		return ix, nil
	}
	if err := atomicfile.Write(filepath.Join(tmp, catalogFileNam), func(w io.Writer) error { return WriteCatalog(w, titles) }); err != nil {
		return fail(err)
	}
	// bleve keeps files open under tmp; close before the rename, reopen
	// at the final place.
	if err := ix.bi.Close(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return OpenIndex(dir)
}

// OpenIndex opens an index folder written by NewIndex.
func OpenIndex(dir string) (*Index, error) {
	titles, err := ReadFile(filepath.Join(dir, catalogFileNam), ReadCatalog)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "index folder %s: %w", dir, err)
	}
	bi, err := bleve.Open(filepath.Join(dir, indexDirName))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "index folder %s: %w", dir, err)
	}
	ix := &Index{bi: bi, titles: make(map[string]*Title, len(titles)), list: titles}
	for i := range titles {
		ix.titles[titles[i].ID] = &titles[i]
	}
	n, err := bi.DocCount()
	if err == nil && n != uint64(len(titles)) {
		err = fmt.Errorf("%d titles indexed but %d in its catalog", n, len(titles))
	}
	if err != nil {
		bi.Close()
		return nil, fault.Errorf(fault.Invalid, "index folder %s: %w", dir, err)
	}
	return ix, nil
}

// Close releases the index.
func (ix *Index) Close() error { return ix.bi.Close() }

// Titles are the indexed titles, in catalog order.
func (ix *Index) Titles() []Title { return ix.list }

// Title returns the title with id, or nil.
func (ix *Index) Title(id string) *Title { return ix.titles[id] }

// Scored is a retrieved title and its BM25 score.
type Scored struct {
	ID    string
	Score float64
}

// MaxQueryBytes bounds a query. bleve builds a term searcher for every
// word and field before it looks at the deadline: a query of half a
// megabyte (what a request body may hold) took 3 s and a gigabyte of
// memory. A search box's query is far shorter.
const MaxQueryBytes = 512

// Retrieve returns the k best titles for query by BM25, best first, ties
// by id so that the order is deterministic. Every word of the query is
// looked for in every field; a title needs one of them.
func (ix *Index) Retrieve(ctx context.Context, q string, k int) ([]Scored, error) {
	if strings.TrimSpace(q) == "" {
		return nil, fault.Invalidf("query", "empty query")
	}
	if len(q) > MaxQueryBytes {
		return nil, fault.Invalidf("query", "%d bytes: a query is at most %d bytes", len(q), MaxQueryBytes)
	}
	if k <= 0 {
		return nil, nil
	}
	fields := [...]string{"name", "text"}
	qs := make([]query.Query, 0, len(fields))
	for _, f := range fields {
		mq := bleve.NewMatchQuery(q)
		mq.SetField(f)
		if f == "name" {
			mq.SetBoost(nameBoost)
		}
		qs = append(qs, mq)
	}
	req := bleve.NewSearchRequestOptions(bleve.NewDisjunctionQuery(qs...), k, 0, false)
	req.SortByCustom(blevesearch.SortOrder{&blevesearch.SortScore{Desc: true}, &blevesearch.SortDocID{}})
	res, err := ix.bi.SearchInContext(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("search %q: %w", q, err)
	}
	out := make([]Scored, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = Scored{ID: h.ID, Score: h.Score}
	}
	return out, nil
}
