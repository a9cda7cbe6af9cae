package serve

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/baton-ml/baton/internal/rec"
)

// The market of a page is the request's attribute: pages asked for in
// markets the model does not know must not each keep a per-title cache
// (a client could grow the server's memory without bound), and every
// unknown market gets the same page.
func TestRecommendUnknownMarketsShareACache(t *testing.T) {
	_, files := recWorld()
	m, err := loadRec(files[rec.KindALS])
	if err != nil {
		t.Fatal(err)
	}
	rm := &rowsModel{m: m, cfg: RecommendConfig{Rows: allRows()}}
	var first Page
	for i := range 200 {
		out, err := rm.Predict(context.Background(), Input{Key: "nobody", Attributes: map[string]any{"market": fmt.Sprintf("X%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		pg := out.Prediction.(Page)
		if i == 0 {
			first = pg
		} else if !slices.EqualFunc(pg.Rows, first.Rows, func(a, b PageRow) bool { return slices.Equal(a.Items, b.Items) }) {
			t.Fatalf("market X%d got another page than X0", i)
		}
	}
	for _, mk := range m.r.Markets() {
		if _, err := rm.Predict(context.Background(), Input{Key: "nobody", Attributes: map[string]any{"market": mk}}); err != nil {
			t.Fatal(err)
		}
	}
	if limit := len(m.r.Markets()) + 2; len(m.markets) > limit {
		t.Fatalf("after 200 unknown markets the model keeps %d market views (it knows %d markets)", len(m.markets), len(m.r.Markets()))
	}
}
