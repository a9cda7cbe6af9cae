package search

import (
	"context"
	"testing"
)

// BenchmarkSearch is one query on 10,000 titles: retrieve the top 100 by
// BM25, re-rank them, answer 20.
//
//	go test -run '^$' -bench BenchmarkSearch -count 3 ./internal/search/
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	s, ix := synthIndex(b, SynthOptions{Titles: 10000, Members: 2000, Sessions: 4000, Seed: 1})
	m, err := Train(ctx, ix, s.Interactions, s.Clicks, TrainOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srch, _ := NewSearcher(ix, m, 0)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		q := s.Clicks[(i*7919)%len(s.Clicks)].Query
		if _, err := srch.Search(ctx, q, memberID(i%2000), 20); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkIndex10k indexes 10,000 titles in memory.
func BenchmarkIndex10k(b *testing.B) {
	s := Synthesize(SynthOptions{Titles: 10000, Members: 10, Sessions: 10, Seed: 1})
	for b.Loop() {
		ix, err := NewIndex(context.Background(), s.Titles, "")
		if err != nil {
			b.Fatal(err)
		}
		ix.Close()
	}
}

func TestRunBenchSmall(t *testing.T) {
	r, err := RunBench(context.Background(), BenchOptions{Titles: 300, Queries: 50})
	if err != nil {
		t.Fatal(err)
	}
	if r.Reranked != 50 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
		t.Fatalf("%+v", r)
	}
}
