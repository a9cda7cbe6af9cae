package rec

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// The interchange format of a factor model, for a model trained outside
// baton: two CSV files, member,f0,...,fK-1 and title,f0,...,fK-1, whose
// rows are the member and title factors (the score of a member for a
// title is the dot product of their rows). ImportALS turns them, with the
// data they were trained on, into an als model file: the file the
// model file format keeps private (a gob of unexported structs) is then
// written by baton, and serves and evaluates as one baton trained.

// MaxFactor bounds a factor's magnitude: scores are dot products of up to
// 1024 factors in float32, which 1e9 keeps far from overflowing (3.4e38).
const MaxFactor = 1e9

// maxFactors is the most factors per row, as for ALS's factors parameter.
const maxFactors = 1024

// Factors are one side of a factor model, as read from its CSV file.
type Factors struct {
	File   string
	IDs    []string
	K      int
	Values []float32 // row-major, K per id
	lines  []int     // each row's line, for errors found later
}

// ReadFactors reads a factors file whose id column is idColumn (member
// or title): the header idColumn,f0,...,fK-1, then one row per id with K
// finite numbers of magnitude at most MaxFactor. Errors name the file,
// the line and the column.
func ReadFactors(r io.Reader, name, idColumn string) (*Factors, error) {
	tr := csvtable.NewReader(r, name)
	header, hline, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: fmt.Errorf("empty: a factors file starts with the header %s,f0,f1,...", idColumn)}
	}
	if err != nil {
		return nil, err
	}
	if header[0] != idColumn {
		return nil, &csvtable.InputError{File: name, Line: hline, Column: header[0],
			Err: fmt.Errorf("the first column must be %q, then the factors f0,f1,...", idColumn)}
	}
	k := len(header) - 1
	if k < 1 || k > maxFactors {
		return nil, &csvtable.InputError{File: name, Line: hline, Err: fmt.Errorf("%d factor columns: want 1 to %d, f0,f1,...", k, maxFactors)}
	}
	for j, h := range header[1:] {
		if h != "f"+strconv.Itoa(j) {
			return nil, &csvtable.InputError{File: name, Line: hline, Column: h, Err: fmt.Errorf("factor column %d must be named f%d", j+1, j)}
		}
	}
	f := &Factors{File: name, K: k}
	seen := map[string]int{}
	for {
		rec, line, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return nil, err
		}
		id := string(rec[0])
		if id == "" {
			return nil, &csvtable.InputError{File: name, Line: line, Column: idColumn, Err: fmt.Errorf("empty %s id", idColumn)}
		}
		if prev, dup := seen[id]; dup {
			return nil, &csvtable.InputError{File: name, Line: line, Column: idColumn, Err: fmt.Errorf("%s %q again (first on line %d)", idColumn, id, prev)}
		}
		seen[id] = line
		for j, c := range rec[1:] {
			v, ok := csvtable.ParseFloat(c)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxFactor {
				return nil, &csvtable.InputError{File: name, Line: line, Column: header[j+1],
					Err: fmt.Errorf("%q: a factor must be a finite number of magnitude at most %g", c, float64(MaxFactor))}
			}
			f.Values = append(f.Values, float32(v))
		}
		f.IDs = append(f.IDs, id)
		f.lines = append(f.lines, line)
	}
}

// ImportALS makes an als model from factors trained elsewhere on d: the
// catalog, members, history and popularity come from d as in Train, the
// factors from members and titles. Both must have the same K; every title
// of the catalog needs a row and every row a title of the catalog; every
// member with interactions in d needs a row, every row a member of d (one
// without interactions is answered from popularity, as in any model).
func ImportALS(d *Dataset, members, titles *Factors) (*Recommender, error) {
	if members.K != titles.K {
		return nil, fault.Invalidf("factors", "%s has %d factors per member, %s %d per title: both sides need the same K",
			members.File, members.K, titles.File, titles.K)
	}
	k := members.K
	b := newBase(KindALS, d, map[string]string{"factors": strconv.Itoa(k), "imported": "true"})
	b.Pop, b.Count = popularity(d, 0)
	m := &alsModel{K: k, X: make([]float32, len(b.Members)*k), Y: make([]float32, len(b.Titles)*k)}
	titleSide := side{what: "title", unknown: "is not in the catalog", needs: "of the catalog", n: len(b.Titles),
		index: d.TitleIndex, name: func(i int) string { return b.Titles[i].ID }}
	if err := titleSide.place(titles, m.Y); err != nil {
		return nil, err
	}
	memberSide := side{what: "member", unknown: "is in neither the members nor the interactions", needs: "with interactions", n: len(b.Members),
		index: d.MemberIndex, name: func(u int) string { return b.Members[u].ID }, needed: func(u int) bool { return !b.cold(u) }}
	if err := memberSide.place(members, m.X); err != nil {
		return nil, err
	}
	return &Recommender{b: b, s: m}, nil
}

// side is one side of a factor model: its ids' indexes in the dataset.
type side struct {
	what, unknown, needs string
	n                    int
	index                func(string) int32
	name                 func(int) string
	needed               func(int) bool // nil: every index needs a row
}

// place copies f's rows to dst (n rows of f.K) at each id's index,
// refusing an id the side does not know (naming its line) and a missing
// row that an index needs.
func (s side) place(f *Factors, dst []float32) error {
	k := f.K
	have := make([]bool, s.n)
	for r, id := range f.IDs {
		i := s.index(id)
		if i < 0 {
			return &csvtable.InputError{File: f.File, Line: f.lines[r], Column: s.what, Err: fmt.Errorf("%s %q %s", s.what, id, s.unknown)}
		}
		copy(dst[int(i)*k:(int(i)+1)*k], f.Values[r*k:(r+1)*k])
		have[i] = true
	}
	var missing []string
	count := 0
	for i := range s.n {
		if !have[i] && (s.needed == nil || s.needed(i)) {
			if count++; len(missing) < 5 {
				missing = append(missing, strconv.Quote(s.name(i)))
			}
		}
	}
	if count > 0 {
		return &csvtable.InputError{File: f.File, Err: fmt.Errorf("no factors for %d %ss %s: %s%s", count, s.what, s.needs, strings.Join(missing, ", "), more(count, len(missing)))}
	}
	return nil
}

func more(count, shown int) string {
	if count > shown {
		return fmt.Sprintf(" and %d more", count-shown)
	}
	return ""
}
