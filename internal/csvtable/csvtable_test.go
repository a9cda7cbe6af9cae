package csvtable

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/baton-ml/baton/internal/fault"
)

func TestReader(t *testing.T) {
	t.Parallel()
	in := "\ufeffunit, variant ,m\r\n" +
		"u1,A,1.5\r\n" +
		"\r\n" +
		"\"u,2\",\"B\",\" -2 \"\r\n" +
		"u3, A ,\"say \"\"hi\"\"\"\r\n" +
		"u4,\u00a0C\u00a0,\"multi\nline\"\n"
	r := NewReader(strings.NewReader(in), "in.csv")
	names, line, err := r.Header()
	if err != nil || strings.Join(names, "|") != "unit|variant|m" || line != 1 {
		t.Fatalf("header %q line %d: %v", names, line, err)
	}
	var got []string
	var lines []int
	for {
		rec, line, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var fs []string
		for _, f := range rec {
			fs = append(fs, string(f))
		}
		got = append(got, strings.Join(fs, "|"))
		lines = append(lines, line)
	}
	want := []string{"u1|A|1.5", "u,2|B|-2", `u3|A|say "hi"`, "u4|C|multi\nline"}
	if strings.Join(got, "/") != strings.Join(want, "/") || r.Rows() != 4 {
		t.Errorf("records %q, want %q", got, want)
	}
	if wantLines := []int{2, 4, 5, 6}; !slices.Equal(lines, wantLines) {
		t.Errorf("lines %v, want %v", lines, wantLines)
	}
	if r.BytesRead() != int64(len(in)) {
		t.Errorf("read %d bytes of %d", r.BytesRead(), len(in))
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		line     int
		column   string
		want     string
	}{
		{"duplicate column", "a,b,a\n1,2,3\n", 1, "a", "duplicate column name"},
		{"nameless column", "a,,c\n1,2,3\n", 1, "", "column 2 has no name"},
		{"blank name", "a, \t,c\n1,2,3\n", 1, "", "column 2 has no name"},
		{"ragged short", "a,b,c\n1,2,3\n\n4,5\n", 4, "c", "missing: the row has 2 of the header's 3 fields"},
		{"ragged long", "a,b\n1,2,3\n", 2, "", "the row has 3 fields, the header only 2"},
		{"no rows", "a,b\n\n\n", 1, "", "no data rows after the header"},
		{"open quote", "a,b\n1,\"x\n2,3\n", 2, "", "not closed"},
		{"bare quote", "a\n1\nx\"y\n", 3, "", `character 2: a bare "`},
		{"text after quote", "a,b\n\"x\"y,1\n", 2, "", "closing quote"},
	} {
		r := NewReader(strings.NewReader(c.in), "in.csv")
		var err error
		if _, _, err = r.Header(); err == nil {
			for err == nil {
				_, _, err = r.Next()
			}
		}
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, fault.Invalid) {
			t.Errorf("%s: error %v, want an *InputError of invalid input", c.name, err)
			continue
		}
		if ie.File != "in.csv" || ie.Line != c.line || ie.Column != c.column || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q (line %d, column %q), want line %d, column %q, %q", c.name, err, ie.Line, ie.Column, c.line, c.column, c.want)
		}
	}
	if _, _, err := NewReader(strings.NewReader(""), "in.csv").Header(); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
}

func TestInputErrorText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e    InputError
		want string
	}{
		{InputError{File: "f.csv", Err: errors.New("x")}, "f.csv: x"},
		{InputError{File: "f.csv", Line: 3, Err: errors.New("x")}, "f.csv: line 3: x"},
		{InputError{File: "f.csv", Column: "c", Err: errors.New("x")}, `f.csv: column "c": x`},
		{InputError{File: "f.csv", Line: 3, Column: "c", Err: errors.New("x")}, `f.csv: line 3, column "c": x`},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}

// TestParseFloat checks the fast path against strconv.
func TestParseFloat(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var s string
		switch r.IntN(4) {
		case 0:
			s = strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.IntN(20)-10)), 'f', r.IntN(12), 64)
		case 1:
			s = strconv.FormatFloat(r.Float64()*1000, 'f', -1, 64)
		case 2:
			s = strconv.Itoa(r.IntN(1 << 40))
		default:
			s = "0." + strings.Repeat("0", r.IntN(8)) + strconv.Itoa(r.IntN(1<<30))
		}
		got, ok := ParseFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if !ok || err != nil || got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("ParseFloat(%q) = %v %v, strconv %v %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{"", "-", ".", "+.", "1.2.3", "1e", "abc", "--1", "1 2"} {
		if f, ok := ParseFloat([]byte(s)); ok {
			t.Errorf("ParseFloat(%q) = %v, ok", s, f)
		}
	}
	for _, c := range []struct {
		s    string
		want float64
	}{{"inf", math.Inf(1)}, {"-Inf", math.Inf(-1)}, {"1e999", math.Inf(1)}, {"-0", math.Copysign(0, -1)}, {"0x1p-2", 0.25}, {"1e3", 1000}} {
		if f, ok := ParseFloat([]byte(c.s)); !ok || f != c.want || math.Signbit(f) != math.Signbit(c.want) {
			t.Errorf("ParseFloat(%q) = %v %v, want %v", c.s, f, ok, c.want)
		}
	}
	if f, ok := ParseFloat([]byte("NaN")); !ok || !math.IsNaN(f) {
		t.Errorf("NaN: %v %v", f, ok)
	}
}

// FuzzRecords checks that the reader never panics and that its records
// are encoding/csv's (trimmed) wherever encoding/csv accepts the input.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{
		"unit,variant,m\n1,A,1\n2,B,2.5\n",
		"unit,variant,m,label\r\n1,\"A\",\"1\",\"x\ny\"\r\n\r\n2,B,,z\n",
		"variant,m\nA,1e5\nB,NaN\nA,x\n",
		"unit,variant,m\n1,A,\"1\"\"\"\n",
		"\ufeffunit,variant\n1, A \n",
		"unit,variant,m\n1,A\n",
		"unit,variant,m\n1,\"A\n",
		"a\n \"x\" \n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantLines, werr := csvRecords(in)
		// Through the smallest buffer bufio allows, so that the fuzzer
		// reaches the long-line path.
		r := &Reader{br: bufio.NewReaderSize(bytes.NewReader(in), 16), name: "fuzz.csv"}
		for i := 0; ; i++ {
			rec, line, err := r.record()
			if errors.Is(err, io.EOF) {
				if werr == nil && i != len(want) {
					t.Fatalf("%d records, encoding/csv %d", i, len(want))
				}
				return
			}
			if err != nil {
				var ie *InputError
				if !errors.As(err, &ie) || ie.File != "fuzz.csv" {
					t.Fatalf("error %v is not an *InputError naming the input", err)
				}
				if werr == nil {
					t.Fatalf("record %d: %v, encoding/csv read %q", i, err, want[i:])
				}
				return
			}
			if werr != nil {
				continue
			}
			if i >= len(want) {
				t.Fatalf("record %d %q beyond encoding/csv's %d", i, rec, len(want))
			}
			if len(rec) != len(want[i]) || line != wantLines[i] {
				t.Fatalf("record %d: %q at line %d, encoding/csv %q at line %d", i, rec, line, want[i], wantLines[i])
			}
			for j, f := range rec {
				if string(TrimSpace(f)) != string(TrimSpace([]byte(want[i][j]))) {
					t.Fatalf("record %d field %d: %q, encoding/csv %q", i, j, f, want[i][j])
				}
			}
		}
	})
}

func csvRecords(in []byte) ([][]string, []int, error) {
	r := csv.NewReader(bytes.NewReader(in))
	r.FieldsPerRecord = -1
	var recs [][]string
	var lines []int
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return recs, lines, nil
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := r.FieldPos(0)
		recs = append(recs, rec)
		lines = append(lines, line)
	}
}

// benchCSV is a million rows of an experiment's table: a unit, a variant,
// two decimals, a 0/1 and a market (about 50 MB).
var benchCSV = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(7, 8))
	const rows = 1_000_000
	b := make([]byte, 0, rows*56)
	b = append(b, "unit,variant,minutes,minutes_pre,converted,market\n"...)
	markets := []string{"US", "CA", "BR", "DE", "FR", "JP"}
	for i := range rows {
		variant := "control"
		if r.IntN(2) == 1 {
			variant = "treatment"
		}
		b = append(b, 'u')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = append(b, variant...)
		b = append(b, ',')
		b = strconv.AppendFloat(b, 15+5*r.NormFloat64(), 'f', 6, 64)
		b = append(b, ',')
		b = strconv.AppendFloat(b, 15+5*r.NormFloat64(), 'f', 6, 64)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.IntN(2)), 10)
		b = append(b, ',')
		b = append(b, markets[r.IntN(len(markets))]...)
		b = append(b, '\n')
	}
	return b
})

// BenchmarkRecords reads benchCSV's records and parses its numbers, with
// this package and with encoding/csv and strconv (what drift.ReadCSV used
// before both packages shared this reader).
func BenchmarkRecords(b *testing.B) {
	in := benchCSV()
	b.Run("csvtable", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			r := NewReader(bytes.NewReader(in), "bench.csv")
			if _, _, err := r.Header(); err != nil {
				b.Fatal(err)
			}
			sum := 0.0
			for {
				rec, _, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				f, _ := ParseFloat(rec[2])
				sum += f
			}
			if sum == 0 {
				b.Fatal("no numbers")
			}
		}
	})
	b.Run("encoding-csv", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			r := csv.NewReader(bytes.NewReader(in))
			r.ReuseRecord = true
			if _, err := r.Read(); err != nil {
				b.Fatal(err)
			}
			sum := 0.0
			for {
				rec, err := r.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				f, _ := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
				sum += f
			}
			if sum == 0 {
				b.Fatal("no numbers")
			}
		}
	})
}
