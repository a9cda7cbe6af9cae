package feature_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	pq "github.com/parquet-go/parquet-go"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/parquet"
)

func TestBuildGatesAndOutputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := feature.OpenStore(t)
	d, _ := feature.Parse("f.yaml", []byte(feature.DefsYAML+`  - name: avg_minutes
    source: plays
    aggregate: avg
    field: minutes
    window: 24h
    quality:
      - {check: drift, max: 0.2, action: block}
`))
	if _, err := feature.Apply(ctx, st, "f.yaml", d); err != nil {
		t.Fatal(err)
	}
	cat, _ := feature.Load(ctx, st)
	dir := t.TempDir()
	eng := feature.NewEngine(cat, dir, feature.NewMemory(), nil)
	defer eng.Close()
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, `{"member_id":"m%d","ts":"2026-11-01T10:00:00Z","minutes":%d,"market":"US"}`+"\n", i%50, i%30)
	}
	if _, err := eng.Ingest(ctx, "plays", strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	labels := func(n int, at string) *feature.Labels {
		l := &feature.Labels{Header: []string{"member_id", "ts", "y"}, TimeCol: 1}
		us, _ := feature.ParseTime(at)
		for i := range n {
			l.Rows = append(l.Rows, []string{"m" + strconv.Itoa(i), at, strconv.Itoa(i % 2)})
			l.Times = append(l.Times, us)
		}
		return l
	}
	feats, _ := cat.Select(nil)
	out := filepath.Join(t.TempDir(), "train.parquet")
	built, err := feature.Build(ctx, st, cat, eng.LogDir(), feature.BuildOptions{Labels: labels(50, "2026-11-01T12:00:00Z"), Features: feats, Out: out, Parquet: parquet.Write})
	if err != nil || built.Report.Status != "passed" || built.Computation.ID == 0 {
		t.Fatalf("first build: %+v %v", built, err)
	}
	// The Parquet file has the label columns, the features and the versions.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := f.Stat()
	pf, err := pq.OpenFile(f, st2.Size())
	if err != nil {
		t.Fatal(err)
	}
	if pf.NumRows() != 50 {
		t.Fatalf("parquet rows %d", pf.NumRows())
	}
	meta, _ := pf.Lookup("baton")
	if !strings.Contains(meta, `"plays_1h":1`) {
		t.Fatalf("parquet metadata %q", meta)
	}
	var names []string
	for _, c := range pf.Schema().Fields() {
		names = append(names, c.Name())
	}
	f.Close()
	if !slices.Equal(names, []string{"avg_minutes", "member_id", "minutes_24h", "plays_1h", "ts", "y"}) {
		t.Fatalf("columns %v", names)
	}
	// Half the labels have no events: minutes_24h's not-null rate 0.5
	// passes at min 0.5; a third of them fails it and blocks.
	out2 := filepath.Join(t.TempDir(), "train.csv")
	built, err = feature.Build(ctx, st, cat, eng.LogDir(), feature.BuildOptions{Labels: labels(150, "2026-11-01T12:00:00Z"), Features: feats, Out: out2})
	if !errors.Is(err, feature.ErrBlocked) || built.Report.Status != "blocked" || !strings.Contains(err.Error(), "FAIL minutes_24h not_null_rate (block)") {
		t.Fatalf("blocked build: %v", err)
	}
	if _, err := os.Stat(out2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a blocked build wrote its output: %v", err)
	}
	// The next day's values have drifted far: the drift gate blocks.
	var b2 strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b2, `{"member_id":"m%d","ts":"2026-11-02T10:00:00Z","minutes":%d,"market":"US"}`+"\n", i, 500+i)
	}
	if _, err := eng.Ingest(ctx, "plays", strings.NewReader(b2.String())); err != nil {
		t.Fatal(err)
	}
	built, err = feature.Build(ctx, st, cat, eng.LogDir(), feature.BuildOptions{Labels: labels(50, "2026-11-03T09:00:00Z"), Features: feats, Out: out2})
	if !errors.Is(err, feature.ErrBlocked) || !strings.Contains(err.Error(), "FAIL avg_minutes drift (block): PSI") {
		t.Fatalf("drift: %v %+v", err, built.Report)
	}
	// Warn-only failures still write: the range gate (max 1440) warns.
	cat.Features["avg_minutes"].Quality = nil
	built, err = feature.Build(ctx, st, cat, eng.LogDir(), feature.BuildOptions{Labels: labels(50, "2026-11-03T09:00:00Z"), Features: feats, Out: out2})
	if err != nil || built.Report.Status != "passed" {
		t.Fatalf("without the drift gate: %+v %v", built.Report, err)
	}
	csvOut, _ := os.ReadFile(out2)
	if !strings.HasPrefix(string(csvOut), "member_id,ts,y,") || strings.Count(string(csvOut), "\n") != 51 {
		t.Fatalf("csv:\n%s", csvOut)
	}
}

// A .parquet output needs the Parquet writer: without one, Build refuses
// before computing anything.
func TestBuildParquetNeedsAWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := feature.OpenStore(t)
	d, _ := feature.Parse("f.yaml", []byte(feature.DefsYAML))
	if _, err := feature.Apply(ctx, st, "f.yaml", d); err != nil {
		t.Fatal(err)
	}
	cat, _ := feature.Load(ctx, st)
	feats, _ := cat.Select(nil)
	out := filepath.Join(t.TempDir(), "train.parquet")
	l := &feature.Labels{Header: []string{"member_id", "ts"}, TimeCol: 1}
	_, err := feature.Build(ctx, st, cat, t.TempDir(), feature.BuildOptions{Labels: l, Features: feats, Out: out})
	if !errors.Is(err, feature.ErrNoParquet) {
		t.Fatalf("Build of %s without a writer: %v; want ErrNoParquet", out, err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused build wrote its output: %v", err)
	}
}
