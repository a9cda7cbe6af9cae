package search_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/baton-ml/baton/internal/search"
)

func ExampleSearcher_Search() {
	ctx := context.Background()
	catalog := `title,name,genres,creator,new_creator,released,description
t1,The Long Road,drama,ana,false,2021-03-01T00:00:00Z,a road trip across the country
t2,Road Kings,comedy,bo,true,1640995200,two friends and a van
t3,Deep Blue,documentary,cy,false,2019-06-01T00:00:00Z,the ocean and its road of currents
`
	titles, err := search.ReadCatalog(strings.NewReader(catalog), "catalog.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	ix, err := search.NewIndex(ctx, titles, "") // in memory
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ix.Close()
	s, _ := search.NewSearcher(ix, nil, 0) // no model: BM25 order
	// t1 has the word in its name and its description, t2 in its name
	// (which counts double), t3 in its description.
	hits, _ := s.Search(ctx, "road", "", 10)
	for _, h := range hits {
		fmt.Println(h.Rank, h.Title, h.Path)
	}
	// Output:
	// 1 t1 bm25
	// 2 t2 bm25
	// 3 t3 bm25
}
