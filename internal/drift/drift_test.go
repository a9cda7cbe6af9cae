package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// vectorsDir holds the SciPy reference vectors, shared by the whole project
// beside the repository.
var vectorsDir = filepath.Join("..", "..", "..", "shared", "testdata", "stats")

type vectorColumn struct {
	Name        string   `json:"name"`
	Type        Kind     `json:"type"`
	PSI         float64  `json:"psi"`
	KSStatistic *float64 `json:"ks_statistic"`
	PValue      float64  `json:"p_value"`
	Drifted     bool     `json:"drifted"`
}

type vectorCase struct {
	Reference string         `json:"reference"`
	Current   string         `json:"current"`
	Columns   []vectorColumn `json:"columns"`
}

func loadCases(t testing.TB) []vectorCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, "drift.json"))
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	var v struct{ Cases []vectorCase }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("drift.json: %v", err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("drift.json has no cases")
	}
	return v.Cases
}

func readFile(t testing.TB, rel string) Table {
	t.Helper()
	f, err := os.Open(filepath.Join(vectorsDir, rel))
	if err != nil {
		t.Fatalf("reference vectors: %v", err)
	}
	defer f.Close()
	tab, err := ReadCSV(f, rel)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func readString(t testing.TB, name, data string) Table {
	t.Helper()
	tab, err := ReadCSV(strings.NewReader(data), name)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Abs(want)
}

func TestCompareVectors(t *testing.T) {
	t.Parallel()
	for _, c := range loadCases(t) {
		t.Run(c.Reference, func(t *testing.T) {
			t.Parallel()
			rep, err := Compare(readFile(t, c.Reference), readFile(t, c.Current), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Columns) != len(c.Columns) {
				t.Fatalf("%d columns, want %d", len(rep.Columns), len(c.Columns))
			}
			drifted := 0
			for i, want := range c.Columns {
				got := rep.Columns[i]
				if got.Name != want.Name || got.Type != want.Type || got.Drifted != want.Drifted {
					t.Errorf("column %d = %s %s drifted=%v, want %s %s drifted=%v",
						i, got.Name, got.Type, got.Drifted, want.Name, want.Type, want.Drifted)
				}
				if e := relErr(got.PSI, want.PSI); e > 1e-12 {
					t.Errorf("%s: psi %.17g, want %.17g (rel %.2g)", want.Name, got.PSI, want.PSI, e)
				}
				if e := relErr(got.PValue, want.PValue); e > 1e-11 {
					t.Errorf("%s: p %.17g, want %.17g (rel %.2g)", want.Name, got.PValue, want.PValue, e)
				}
				switch {
				case (got.KSStatistic == nil) != (want.KSStatistic == nil):
					t.Errorf("%s: ks_statistic %v, want %v", want.Name, got.KSStatistic, want.KSStatistic)
				case got.KSStatistic != nil && relErr(*got.KSStatistic, *want.KSStatistic) > 1e-12:
					t.Errorf("%s: ks %.17g, want %.17g", want.Name, *got.KSStatistic, *want.KSStatistic)
				}
				if want.Drifted {
					drifted++
				}
			}
			if want := float64(drifted) / float64(len(c.Columns)); rep.DriftedShare != want {
				t.Errorf("drifted_share %g, want %g", rep.DriftedShare, want)
			}
		})
	}
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	c := loadCases(t)[0] // nothing drifted at the defaults
	ref, cur := readFile(t, c.Reference), readFile(t, c.Current)
	// PSI of score is 0.0034 and p of market 0.555: a PSI threshold below
	// the first, and an alpha above the second, flag both.
	rep, err := Compare(ref, cur, Options{PSIThreshold: 0.003, Alpha: 0.6})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Columns[0].Drifted || !rep.Columns[1].Drifted || rep.DriftedShare != 1 {
		t.Errorf("report %+v: want both columns drifted", rep)
	}
	for _, o := range []Options{{PSIThreshold: -1}, {Alpha: 1.5}, {Alpha: -0.1}, {PSIThreshold: math.NaN()}, {PSIThreshold: math.Inf(1)}} {
		if _, err := Compare(ref, cur, o); err == nil {
			t.Errorf("Compare with %+v: no error", o)
		}
	}
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	tab := readString(t, "in.csv", "\ufeffx, y ,z\n1,a,\n 2.5 ,,nan\n,b,3\n1e999,7,inf\n")
	if tab.Rows != 4 || len(tab.Columns) != 3 {
		t.Fatalf("rows %d columns %d, want 4 and 3", tab.Rows, len(tab.Columns))
	}
	x, y, z := tab.Columns[0], tab.Columns[1], tab.Columns[2]
	if x.Name != "x" || x.Kind != Numeric || !slices.Equal(x.Nums, []float64{1, 2.5, math.Inf(1)}) {
		t.Errorf("x = %+v", x)
	}
	if y.Name != "y" || y.Kind != String || !slices.Equal(y.Strs, []string{"a", "b", "7"}) {
		t.Errorf("y = %+v", y)
	}
	// NaN is a missing number, not a value.
	if z.Kind != Numeric || !slices.Equal(z.Nums, []float64{3, math.Inf(1)}) {
		t.Errorf("z = %+v", z)
	}
	// A quoted value may hold commas and line breaks.
	tab = readString(t, "q.csv", "a,b\n\"x, y\",1\n\"two\nlines\",2\n")
	if got := tab.Columns[0].Strs; !slices.Equal(got, []string{"x, y", "two\nlines"}) {
		t.Errorf("quoted = %q", got)
	}
}

func TestReadCSVErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, data string
		want       []string // substrings of the message
	}{
		{"empty", "", []string{"bad.csv: empty file"}},
		{"header only", "a,b\n", []string{"bad.csv: line 1: no data rows"}},
		{"short row", "a,b\n1,2\n3\n", []string{"bad.csv: line 3, column \"b\": missing", "the row has 1 of the header's 2 fields"}},
		{"long row", "a,b\n1,2\n3,4,5\n", []string{"bad.csv: line 3: the row has 3 fields, the header only 2"}},
		{"duplicate", "a,a\n1,2\n", []string{"bad.csv: line 1, column \"a\": duplicate"}},
		{"unnamed", "a,,c\n1,2,3\n", []string{"bad.csv: line 1: column 2 has no name"}},
		{"no values", "a,b\n1,\n2, \n", []string{"bad.csv: column \"b\": no values", "lines 2-3"}},
		{"bare quote", "a\n1\nx\"y\n", []string{"bad.csv: line 3: character", "bare \""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadCSV(strings.NewReader(c.data), "bad.csv")
			if err == nil {
				t.Fatal("no error")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("%T is not an *InputError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	t.Parallel()
	ref := readString(t, "ref.csv", "a,b\n1,x\n2,y\n")
	for _, c := range []struct {
		name, cur string
		want      []string
	}{
		{"missing column", "a\n1\n", []string{"cur.csv: line 1, column \"b\": missing", "ref.csv"}},
		{"extra column", "a,b,c\n1,x,2\n", []string{"cur.csv: line 1, column \"c\": not a column of the reference ref.csv"}},
		{"renamed", "a,B\n1,x\n", []string{"cur.csv: line 1, column \"B\": column 2 should be \"b\""}},
		{"text in a numeric column", "a,b\n1,x\n3,y\noops,z\n", []string{"cur.csv: line 4, column \"a\": \"oops\" is not a number", "numeric in ref.csv"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compare(ref, readString(t, "cur.csv", c.cur), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Numbers in the current file where the reference has text: the
	// reference is the file to blame.
	_, err := Compare(readString(t, "ref.csv", "a\nx\n"), readString(t, "cur.csv", "a\n1\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "ref.csv: line 2, column \"a\": \"x\" is not a number, but the column is numeric in cur.csv") {
		t.Errorf("err = %v", err)
	}
	// A hand-built table may have an empty column.
	empty := Table{Name: "cur.csv", Columns: []Column{{Name: "a", Kind: Numeric}, {Name: "b", Kind: String, Strs: []string{"x"}}}}
	if _, err := Compare(ref, empty, Options{}); err == nil || !strings.Contains(err.Error(), `cur.csv: column "a": no values`) {
		t.Errorf("err = %v", err)
	}
}

func TestCompareEdgeCases(t *testing.T) {
	t.Parallel()
	tab := readString(t, "t.csv", "n,s,k\n1,a,5\n2,b,5\n3,a,5\n4,c,5\n")
	rep, err := Compare(tab, tab, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Columns {
		if c.PSI != 0 || c.PValue != 1 || c.Drifted || (c.KSStatistic != nil && *c.KSStatistic != 0) {
			t.Errorf("identical tables, column %s: %+v", c.Name, c)
		}
	}
	if rep.DriftedShare != 0 {
		t.Errorf("drifted_share %g, want 0", rep.DriftedShare)
	}
	// A category seen only in the current file weighs in with the
	// reference's empty bin at 0.0001.
	cur := readString(t, "c.csv", "n,s,k\n1,a,5\n2,b,5\n3,new,5\n4,new,5\n")
	rep, err = Compare(tab, cur, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Columns[1]
	want := (0.25-0.5)*math.Log(0.25/0.5) + (0-0.25+0.0001)*math.Log(0.0001/0.25) + (0.5-0.0001)*math.Log(0.5/0.0001)
	if relErr(s.PSI, want) > 1e-12 || !s.Drifted {
		t.Errorf("new category: psi %.17g (want %.17g), drifted %v", s.PSI, want, s.Drifted)
	}
	if k := rep.Columns[2]; k.PSI != 0 || *k.KSStatistic != 0 || k.PValue != 1 {
		t.Errorf("all-equal column: %+v", k)
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	tab := readString(t, "t.csv", "n,s\n1,a\n2,b\n")
	rep, err := Compare(tab, tab, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"columns":[` +
		`{"name":"n","type":"numeric","psi":0,"ks_statistic":0,"p_value":1,"drifted":false},` +
		`{"name":"s","type":"string","psi":0,"p_value":1,"drifted":false}],"drifted_share":0}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,x\n2,y\n",
		"score,market\n-0.1,IN\n1.5,BR\n,DE\n",
		"a\nnan\n1\n",
		"a,b\n\"1,2\",3\n",
		"\ufeffa\ninf\n-inf\n0\n",
		"a,b\n1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadCSV(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, c := range tab.Columns {
			if c.Len() == 0 {
				t.Fatalf("column %q has no values", c.Name)
			}
			if slices.ContainsFunc(c.Nums, math.IsNaN) {
				t.Fatalf("column %q holds a NaN", c.Name)
			}
		}
		// Any table compared with itself has not drifted.
		rep, err := Compare(tab, tab, Options{})
		if err != nil {
			t.Fatalf("Compare(t, t): %v", err)
		}
		for _, c := range rep.Columns {
			if c.PSI != 0 || c.PValue != 1 || c.Drifted {
				t.Fatalf("Compare(t, t), column %q: %+v", c.Name, c)
			}
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatalf("report does not encode: %v", err)
		}
	})
}
