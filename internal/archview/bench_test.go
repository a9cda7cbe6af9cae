package archview

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// BenchmarkDocs generates every view for 200 flows, 50 contracts and 20
// models of 5 versions each.
func BenchmarkDocs(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "b.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var sigs strings.Builder
	sigs.WriteString("signals:\n")
	for i := range 50 {
		fmt.Fprintf(&sigs, "  - name: sig%d\n    params: {date: {type: string, required: true}}\n", i)
	}
	docs := []catalog.Document{catalog.FileDocument(filepath.Join(dir, "signals.yaml"), []byte(sigs.String()))}
	for i := range 200 {
		y := fmt.Sprintf("name: flow%d\ntriggers:\n  - signal: sig%d\nsteps:\n  - {name: a, run: 'true'}\n  - {name: b, needs: [a], run: 'true', publish: [sig%d], retry: {attempts: 2}}\n",
			i, i%50, (i+1)%50)
		docs = append(docs, catalog.FileDocument(filepath.Join(dir, fmt.Sprintf("f%d.yaml", i)), []byte(y)))
	}
	if _, err := catalog.Apply(ctx, st, docs); err != nil {
		b.Fatal(err)
	}
	for m := range 20 {
		for v := range 5 {
			if _, err := st.CreateModelVersion(ctx, store.ModelVersion{Model: fmt.Sprintf("model%d", m), Artifact: "1/a/m.json",
				RunID: int64(v + 1), Flow: fmt.Sprintf("flow%d", m)}, "bench", "bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		files, err := Generate(ctx, st, Options{}, nil, true, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(files) != len(Views())+1 {
			b.Fatalf("%d files", len(files))
		}
	}
}
