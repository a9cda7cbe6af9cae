package canary

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReadSamples(t *testing.T) {
	t.Parallel()
	got, err := ReadSamples(strings.NewReader("\ufeffMetric, Value\nlatency,101.5\nerrors,0\nlatency, 99\nerrors,\nlatency,NaN\n\"cpu, total\",1e-3\n"), "b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !slices.Equal(got["latency"][:2], []float64{101.5, 99}) || !math.IsNaN(got["latency"][2]) ||
		got["errors"][0] != 0 || !math.IsNaN(got["errors"][1]) || got["cpu, total"][0] != 1e-3 {
		t.Errorf("%v", got)
	}
	if got, err := ReadSamples(strings.NewReader("metric,value\n"), "empty.csv"); err != nil || len(got) != 0 {
		t.Errorf("header only: %v, %v", got, err)
	}
}

func TestReadSamplesErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", []string{"c.csv", "empty file"}},
		{"name,value\nx,1\n", []string{"c.csv", "line 1", "metric,value"}},
		{"metric,value,unit\nx,1,ms\n", []string{"c.csv", "line 1"}},
		{"metric,value\nx,1\nx\n", []string{"c.csv", "line 3", "1 fields"}},
		{"metric,value\nx,1\n,2\n", []string{"c.csv", "line 3", "empty metric"}},
		{"metric,value\nx,1\nx,fast\n", []string{"c.csv", "line 3", `"x"`, `"fast"`}},
		{"metric,value\nx,Inf\n", []string{"c.csv", "line 2", "not finite"}},
		{"metric,value\nx,1e999\n", []string{"c.csv", "line 2", "out of range"}},
		{"metric,value\nx,\"1\n", []string{"c.csv", "line 2"}},
	} {
		_, err := ReadSamples(strings.NewReader(c.in), "c.csv")
		if err == nil {
			t.Errorf("%q: no error", c.in)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not name %s", c.in, err, w)
			}
		}
	}
}

// FuzzReadSamples: no input panics, and whatever is read writes back to a
// file that reads the same.
func FuzzReadSamples(f *testing.F) {
	for _, s := range []string{
		"metric,value\nlatency,1\nlatency,2.5\nerrors,\n",
		"metric,value\n\"a,b\",NaN\n",
		"\ufeffmetric , value\r\nx , -0\r\n",
		"metric,value\nx,0x1p-2\nx,1_0\n",
		"metric,value\nx,\"1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ReadSamples(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write([]string{"metric", "value"})
		for _, name := range sortedKeys(got) {
			if name == "" || strings.TrimSpace(name) != name {
				t.Errorf("metric name %q", name)
			}
			for _, v := range got[name] {
				if math.IsInf(v, 0) {
					t.Errorf("%s: infinite value", name)
				}
				w.Write([]string{name, strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
		w.Flush()
		again, err := ReadSamples(&buf, "again.csv")
		if err != nil {
			t.Fatalf("rewritten file: %v\n%s", err, buf.String())
		}
		if len(again) != len(got) {
			t.Fatalf("%d metrics, then %d", len(got), len(again))
		}
		for name, vs := range got {
			if !slices.EqualFunc(vs, again[name], func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
				t.Errorf("%s: %v, then %v", name, vs, again[name])
			}
		}
	})
}

// TestSort checks the radix sort against slices.Sort on awkward values:
// both zeros, subnormals, huge magnitudes, repeats.
func TestSort(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	special := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, 1, -1, 1e-300, -1e300}
	var ws workspace
	for _, n := range []int{0, 1, 511, 512, 3000} {
		v := make([]float64, n)
		for i := range v {
			switch rng.IntN(4) {
			case 0:
				v[i] = special[rng.IntN(len(special))]
			case 1:
				v[i] = float64(rng.IntN(5))
			default:
				v[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
			}
		}
		want := slices.Clone(v)
		slices.Sort(want)
		ws.sort(v)
		if !slices.Equal(v, want) {
			t.Errorf("n = %d: radix order differs from slices.Sort", n)
		}
	}
}
