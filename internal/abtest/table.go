package abtest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"

	"github.com/baton-ml/baton/internal/csvtable"
)

// Kind is a column's type.
type Kind uint8

// The kinds of column.
const (
	// Numeric columns hold a float64 per row (NaN where the cell is empty).
	Numeric Kind = iota
	// Text columns hold a code per row into their distinct values.
	Text
)

func (k Kind) String() string {
	if k == Numeric {
		return "numeric"
	}
	return "text"
}

// Limits of ReadTable: a file with more variants than MaxVariants has the
// wrong column as its variant; a text column with more than MaxLevels
// distinct values keeps no values (it cannot be a breakdown).
const (
	MaxVariants = 1 << 16
	MaxLevels   = 1 << 16
)

// Table is an experiment's units, one row each, as ReadTable reads them:
// the variant of each row as a small code, and the other columns (the
// unit column aside, which is not kept) as float64s or codes.
type Table struct {
	// Name names the input in errors, a file's path usually.
	Name string
	// Rows is the number of units (data rows).
	Rows int
	// Variants are the variants' names in the order they first occur;
	// Variant holds one index into Variants per row.
	Variants []string
	Variant  []uint16
	// Columns are the other columns in header order, without unit and
	// variant.
	Columns []Column
}

// Column is one column of a Table.
type Column struct {
	Name string
	Kind Kind
	// Values (Numeric) holds one value per row, NaN where the cell is
	// empty or NaN.
	Values []float64
	// Codes (Text) holds one index into Levels per row; an empty cell is
	// the level "". Both are nil when the column has more than MaxLevels
	// distinct values.
	Codes  []uint32
	Levels []string

	// notNumber is where a Text column first held a value that is not a
	// finite number, for the error when it is asked for as a metric.
	notNumber cellRef
	// turned is a Text column whose first values were numbers.
	turned bool
	// tooMany is a Text column with more than MaxLevels values.
	tooMany bool
}

type cellRef struct {
	line   int
	value  string
	reason string
}

// Column returns the column named name, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// InputError is a problem with an input (csvtable's, the one reader's).
type InputError = csvtable.InputError

// The header names of the two fixed columns.
const (
	UnitColumn    = "unit"
	VariantColumn = "variant"
)

// ReadTable reads an experiment's CSV: a header `unit,variant,<columns>`
// and one row per unit. The variant column is required and every row must
// name a variant; the unit column is optional and not kept. Every other
// column is Numeric while each of its cells is empty, NaN or a finite
// number, and Text from its first other value on. Cells are trimmed of
// surrounding spaces, blank lines are skipped, and quoted fields are read
// as RFC 4180 has them.
//
// It streams: memory is a float64 (or a 4-byte code) per cell kept and two
// bytes per row for the variant, and an unquoted line costs one scan. When
// r can tell its size (a regular *os.File, a *bytes.Reader...) the columns
// are sized from it up front. Problems are *InputError naming name, the
// line and the column: a ragged row, a row without a variant, an empty or
// duplicate column name, a header without a variant column, no data rows.
// A non-numeric value in a metric column is found by Analyze, which knows
// which columns are metrics; it names the line and column all the same.
func ReadTable(r io.Reader, name string) (*Table, error) {
	cr := csvtable.NewReader(r, name)
	names, headerLine, err := cr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &InputError{File: name, Err: errors.New("empty file: want a header line unit,variant,<metrics>")}
	}
	if err != nil {
		return nil, err
	}
	variantIdx, unitIdx := -1, -1
	for i, s := range names {
		switch s {
		case VariantColumn:
			variantIdx = i
		case UnitColumn:
			unitIdx = i
		}
	}
	if variantIdx < 0 {
		return nil, &InputError{File: name, Line: headerLine,
			Err: fmt.Errorf("no %q column: want a header unit,variant,<metrics>", VariantColumn)}
	}
	t := &Table{Name: name}
	builders := make([]*colBuilder, len(names)) // nil for unit and variant
	for i, n := range names {
		if i == variantIdx || i == unitIdx {
			continue
		}
		t.Columns = append(t.Columns, Column{Name: n, Kind: Numeric})
	}
	for i, j := 0, 0; i < len(names); i++ {
		if i == variantIdx || i == unitIdx {
			continue
		}
		builders[i] = &colBuilder{col: &t.Columns[j]}
		j++
	}
	vb := variantBuilder{t: t}
	size := sizeOf(r)
	sized := size <= 0
	for {
		rec, line, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		v := rec[variantIdx]
		if len(v) == 0 {
			return nil, &InputError{File: name, Line: line, Column: VariantColumn, Err: errors.New("missing variant")}
		}
		code, err := vb.code(v)
		if err != nil {
			return nil, &InputError{File: name, Line: line, Column: VariantColumn, Err: err}
		}
		t.Variant = append(t.Variant, code)
		for i, b := range builders {
			if b != nil {
				b.add(rec[i], line)
			}
		}
		t.Rows++
		if !sized && t.Rows == 1024 {
			sized = true
			// Size the columns from the bytes per row so far, with a
			// margin: growing a slice of 10⁷ float64s by copying costs
			// more than the slack.
			if est := int(float64(size)/float64(cr.BytesRead())*float64(t.Rows)*1.05) + 1024; est > t.Rows {
				t.Variant = grow(t.Variant, est)
				for _, b := range builders {
					if b != nil {
						b.grow(est)
					}
				}
			}
		}
	}
	return t, nil
}

func grow[S ~[]E, E any](s S, n int) S {
	if n <= cap(s) {
		return s
	}
	out := make(S, len(s), n)
	copy(out, s)
	return out
}

// sizeOf is how many bytes r holds, when it can tell: a regular file's
// size, or what a bytes.Reader or strings.Reader has left; else 0.
func sizeOf(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	case interface{ Len() int }:
		return int64(v.Len())
	}
	return 0
}

type variantBuilder struct {
	t     *Table
	index map[string]uint16
}

// code returns b's variant code, adding the variant if it is new. A few
// variants are compared directly: cheaper than hashing.
func (vb *variantBuilder) code(b []byte) (uint16, error) {
	vs := vb.t.Variants
	if len(vs) <= 8 {
		for i, v := range vs {
			if string(b) == v {
				return uint16(i), nil
			}
		}
	} else if c, ok := vb.index[string(b)]; ok {
		return c, nil
	}
	if len(vs) == MaxVariants {
		return 0, fmt.Errorf("more than %d variants: is this the variant column?", MaxVariants)
	}
	s := string(b)
	c := uint16(len(vs))
	vb.t.Variants = append(vs, s)
	if vb.index == nil {
		vb.index = make(map[string]uint16)
	}
	vb.index[s] = c
	return c, nil
}

// colBuilder fills one column.
type colBuilder struct {
	col    *Column
	levels map[string]uint32
}

func (b *colBuilder) grow(n int) {
	c := b.col
	if c.Kind == Numeric {
		c.Values = grow(c.Values, n)
	} else if !c.tooMany {
		c.Codes = grow(c.Codes, n)
	}
}

func (b *colBuilder) add(v []byte, line int) {
	c := b.col
	if c.Kind == Numeric {
		if len(v) == 0 {
			c.Values = append(c.Values, math.NaN())
			return
		}
		f, ok := parseNum(v)
		if ok {
			c.Values = append(c.Values, f)
			return
		}
		reason := "not a number"
		if math.IsInf(f, 0) {
			reason = "not a finite number"
		}
		b.toText(cellRef{line: line, value: string(v), reason: reason})
	}
	if c.tooMany {
		return
	}
	code, ok := b.levels[string(v)]
	if !ok {
		if len(c.Levels) == MaxLevels {
			c.tooMany, c.Codes, c.Levels, b.levels = true, nil, nil, nil
			return
		}
		code = uint32(len(c.Levels))
		s := string(v)
		c.Levels = append(c.Levels, s)
		b.levels[s] = code
	}
	c.Codes = append(c.Codes, code)
}

// toText turns a Numeric column Text at its first value that is not a
// number; the values so far become their shortest text.
func (b *colBuilder) toText(at cellRef) {
	c := b.col
	c.Kind, c.notNumber = Text, at
	b.levels = make(map[string]uint32)
	c.Codes = make([]uint32, 0, cap(c.Values))
	for _, f := range c.Values {
		s := ""
		if !math.IsNaN(f) {
			s = strconv.FormatFloat(f, 'g', -1, 64)
			c.turned = true
		}
		code, ok := b.levels[s]
		if !ok {
			code = uint32(len(c.Levels))
			c.Levels = append(c.Levels, s)
			b.levels[s] = code
		}
		c.Codes = append(c.Codes, code)
	}
	c.Values = nil
}

// parseNum parses a cell as a metric value: ok is false for text and for
// ±Inf; NaN is ok (a missing value).
func parseNum(b []byte) (float64, bool) {
	f, ok := csvtable.ParseFloat(b)
	return f, ok && !math.IsInf(f, 0)
}
