package abtest

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

// benchRows is the size of the benchmarks' experiment: the contract's
// ten million units.
const benchRows = 10_000_000

var benchCSV = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 0, benchRows*48)
	b = append(b, "unit,variant,minutes,minutes_pre,converted\n"...)
	for i := range benchRows {
		variant, effect := "control", 0.0
		if r.IntN(2) == 1 {
			variant, effect = "treatment", 0.3
		}
		pre := 15 + 5*r.NormFloat64()
		post := 3 + 0.8*pre + effect + 3*r.NormFloat64()
		conv := "0"
		if r.Float64() < 0.1 {
			conv = "1"
		}
		b = append(b, 'u')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = append(b, variant...)
		b = append(b, ',')
		b = strconv.AppendFloat(b, post, 'f', 6, 64)
		b = append(b, ',')
		b = strconv.AppendFloat(b, pre, 'f', 6, 64)
		b = append(b, ',')
		b = append(b, conv...)
		b = append(b, '\n')
	}
	return b
})

var benchOpts = Options{Control: "control", Covariates: map[string]string{"minutes": "minutes_pre"}, Sequential: true}

// BenchmarkAnalyze10M reads ten million rows of CSV (about 440 MB, in
// memory) and analyzes them by Welch, CUPED and the confidence sequence:
// the contract's budget is 10 s.
func BenchmarkAnalyze10M(b *testing.B) {
	in := benchCSV()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		tab, err := ReadTable(bytes.NewReader(in), "bench.csv")
		if err != nil {
			b.Fatal(err)
		}
		rep, err := Analyze(tab, benchOpts)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Metrics) != 2 || rep.Units != benchRows {
			b.Fatalf("report %+v", rep)
		}
	}
}

// BenchmarkReadTable10M is the reading alone.
func BenchmarkReadTable10M(b *testing.B) {
	in := benchCSV()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadTable(bytes.NewReader(in), "bench.csv"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnalyzeTable10M is the analysis alone, of a table read once.
func BenchmarkAnalyzeTable10M(b *testing.B) {
	tab, err := ReadTable(bytes.NewReader(benchCSV()), "bench.csv")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Analyze(tab, benchOpts); err != nil {
			b.Fatal(err)
		}
	}
}
