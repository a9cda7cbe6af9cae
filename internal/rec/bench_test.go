package rec

import (
	"bytes"
	"context"
	"runtime"
	"testing"
)

// The sizes: 1 M interactions, 50,000 members × 10,000 titles.
func bigWorld(b *testing.B) *Dataset {
	b.Helper()
	w, err := Synthesize(Synth{Seed: 7, Members: 50000, Titles: 10000, Interactions: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	return w.Data
}

func reportMem(b *testing.B) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-sys-MiB")
}

// BenchmarkALS: 64 factors, 10 iterations (target < 20 s, < 1 GiB).
//
//	go test -run X -bench 'ALS$' -benchtime 1x -count 3 ./internal/rec/
func BenchmarkALS(b *testing.B) {
	for _, prec := range []string{"float32", "float64"} {
		b.Run(prec, func(b *testing.B) {
			d := bigWorld(b)
			b.ResetTimer()
			for range b.N {
				if _, err := Train(context.Background(), KindALS, d, map[string]string{"precision": prec}); err != nil {
					b.Fatal(err)
				}
			}
			reportMem(b)
		})
	}
}

// BenchmarkTopN: top-100 for every member of an ALS model (target < 30 s
// for 50,000 members).
func BenchmarkTopN(b *testing.B) {
	d := bigWorld(b)
	m, err := Train(context.Background(), KindALS, d, map[string]string{"iterations": "2"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		rows := 0
		if err := m.TopNAll(context.Background(), 100, func(_ string, items []Item) error {
			rows += len(items)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rows), "rows")
	}
}

// BenchmarkLoad: reading an ALS model file of the size.
func BenchmarkLoad(b *testing.B) {
	d := bigWorld(b)
	m, err := Train(context.Background(), KindALS, d, map[string]string{"iterations": "1"})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for range b.N {
		if _, err := Load(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecommend: one member's top 20 from an ALS model, the
// serving path.
func BenchmarkRecommend(b *testing.B) {
	w, err := Synthesize(Synth{Seed: 7, Members: 5000, Titles: 10000, Interactions: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	m, err := Train(context.Background(), KindALS, w.Data, map[string]string{"iterations": "2"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		m.Recommend(w.Data.Members[i%5000].ID, Options{N: 20})
	}
}

// BenchmarkSimilarIndexes is the neighbour table a recommend endpoint
// builds when an ALS model of 10,000 titles (64 factors) loads: the 200
// titles most like each title, by 2 workers.
func BenchmarkSimilarIndexes(b *testing.B) {
	w, err := Synthesize(Synth{Seed: 3, Members: 5000, Titles: 10_000, Interactions: 5000 * 30})
	if err != nil {
		b.Fatal(err)
	}
	m, err := Train(context.Background(), KindALS, w.Data, map[string]string{"factors": "64", "iterations": "3"})
	if err != nil {
		b.Fatal(err)
	}
	all := make([]int32, len(w.Data.Titles))
	for i := range all {
		all[i] = int32(i)
	}
	for b.Loop() {
		if _, err := m.SimilarIndexes(context.Background(), all, 200, 2); err != nil {
			b.Fatal(err)
		}
	}
}
