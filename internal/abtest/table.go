package abtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/baton-ml/baton/internal/fault"
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

// InputError is a problem with an input, located as precisely as it can
// be: File always, Line and Column when they apply (0 and "" when not).
type InputError struct {
	File   string
	Line   int
	Column string
	Err    error
}

// Is sorts a bad input file as invalid input.
func (e *InputError) Is(target error) bool { return target == fault.Invalid }

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	}
	if e.Column != "" {
		sep := ","
		if e.Line == 0 {
			sep = ":"
		}
		fmt.Fprintf(&b, "%s column %q", sep, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }

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
	cr := &csvReader{br: bufio.NewReaderSize(r, 1<<20), name: name}
	header, headerLine, err := cr.record()
	if errors.Is(err, io.EOF) {
		return nil, &InputError{File: name, Err: errors.New("empty file: want a header line unit,variant,<metrics>")}
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(header))
	seen := make(map[string]bool, len(header))
	variantIdx, unitIdx := -1, -1
	for i, h := range header {
		s := string(trimSpace(h))
		if i == 0 {
			s = strings.TrimSpace(strings.TrimPrefix(s, "\ufeff")) // spreadsheet exports start with a BOM
		}
		switch {
		case s == "":
			return nil, &InputError{File: name, Line: headerLine, Err: fmt.Errorf("column %d has no name", i+1)}
		case seen[s]:
			return nil, &InputError{File: name, Line: headerLine, Column: s, Err: errors.New("duplicate column name")}
		case s == VariantColumn:
			variantIdx = i
		case s == UnitColumn:
			unitIdx = i
		}
		seen[s] = true
		names[i] = s
	}
	if variantIdx < 0 {
		return nil, &InputError{File: name, Line: headerLine,
			Err: fmt.Errorf("no %q column: want a header unit,variant,<metrics>", VariantColumn)}
	}
	t := &Table{Name: name}
	builders := make([]*colBuilder, len(header)) // nil for unit and variant
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
		rec, line, err := cr.record()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) != len(names) {
			return nil, raggedRow(name, line, len(rec), names)
		}
		v := trimSpace(rec[variantIdx])
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
				b.add(trimSpace(rec[i]), line)
			}
		}
		t.Rows++
		if !sized && t.Rows == 1024 {
			sized = true
			// Size the columns from the bytes per row so far, with a
			// margin: growing a slice of 10⁷ float64s by copying costs
			// more than the slack.
			if est := int(float64(size)/float64(cr.bytes)*float64(t.Rows)*1.05) + 1024; est > t.Rows {
				t.Variant = grow(t.Variant, est)
				for _, b := range builders {
					if b != nil {
						b.grow(est)
					}
				}
			}
		}
	}
	if t.Rows == 0 {
		return nil, &InputError{File: name, Line: headerLine, Err: errors.New("no data rows after the header")}
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

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNum parses a cell as a float64. ok is false for text and for ±Inf;
// NaN is ok (a missing value). Plain decimals ("-12.3456") of up to 15
// digits take a fast path that is exact for the same reason as strconv's
// (an integer below 2⁵³ divided by an exact power of ten rounds once);
// everything else goes to strconv.ParseFloat.
func parseNum(b []byte) (f float64, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
			continue
		case c == '.' && !dot:
			dot = true
			continue
		}
		break
	}
	if i == len(b) && digits > 0 && digits <= 15 && frac < len(pow10) {
		f = float64(m) / pow10[frac]
		if neg {
			f = -f
		}
		return f, true
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	// Out of range: ±Inf (not ok) or a denormal's 0 (a number, just tiny).
	return f, !math.IsInf(f, 0)
}

func raggedRow(name string, line, got int, names []string) error {
	if got < len(names) {
		return &InputError{File: name, Line: line, Column: names[got],
			Err: fmt.Errorf("missing: the row has %d of the header's %d fields", got, len(names))}
	}
	return &InputError{File: name, Line: line,
		Err: fmt.Errorf("the row has %d fields, the header only %d (a value holding a comma needs quotes)", got, len(names))}
}

// trimSpace trims ASCII white space.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// csvReader splits CSV into records. An unquoted line is split where its
// commas are, without copying; a line with a quote is decoded field by
// field, continuing over line ends inside quotes.
type csvReader struct {
	br     *bufio.Reader
	name   string
	line   int   // the physical line last read, from 1
	bytes  int64 // bytes read so far
	long   []byte
	quoted []byte
	ends   []int
	fields [][]byte
}

// readLine returns the next physical line without its line end; it is
// valid until the next call.
func (r *csvReader) readLine() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = r.br.ReadSlice('\n')
			r.long = append(r.long, b...)
		}
		b = r.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &InputError{File: r.name, Line: r.line + 1, Err: fmt.Errorf("read: %w", err)}
	}
	if len(b) == 0 {
		return nil, io.EOF
	}
	r.bytes += int64(len(b))
	r.line++
	if b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b, nil
}

// record returns the next record's fields (valid until the next call) and
// the line it starts on; io.EOF at the end.
func (r *csvReader) record() ([][]byte, int, error) {
	for {
		b, err := r.readLine()
		if err != nil {
			return nil, 0, err
		}
		if len(b) == 0 {
			continue
		}
		if bytes.IndexByte(b, '"') >= 0 {
			return r.quotedRecord(b)
		}
		f := r.fields[:0]
		for {
			i := bytes.IndexByte(b, ',')
			if i < 0 {
				f = append(f, b)
				break
			}
			f = append(f, b[:i])
			b = b[i+1:]
		}
		r.fields = f
		return f, r.line, nil
	}
}

// quotedRecord decodes a line holding a quote, reading on while a quoted
// field spans lines.
func (r *csvReader) quotedRecord(b []byte) ([][]byte, int, error) {
	start := r.line
	buf, ends := r.quoted[:0], r.ends[:0]
	i := 0
	for {
		if i < len(b) && b[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(b[i:], '"')
				if j < 0 {
					buf = append(buf, b[i:]...)
					buf = append(buf, '\n')
					nb, err := r.readLine()
					if errors.Is(err, io.EOF) {
						return nil, 0, &InputError{File: r.name, Line: start, Err: errors.New("a quoted field is not closed before the end of the file")}
					}
					if err != nil {
						return nil, 0, err
					}
					b, i = nb, 0
					continue
				}
				buf = append(buf, b[i:i+j]...)
				i += j + 1
				if i < len(b) && b[i] == '"' {
					buf = append(buf, '"')
					i++
					continue
				}
				break
			}
			// After the closing quote: spaces, then a comma or the end.
			for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
				i++
			}
			ends = append(ends, len(buf))
			if i == len(b) {
				break
			}
			if b[i] != ',' {
				return nil, 0, &InputError{File: r.name, Line: r.line,
					Err: fmt.Errorf("character %d: text after a closing quote (a quote inside a quoted field is written twice)", i+1)}
			}
			i++
			continue
		}
		j := bytes.IndexByte(b[i:], ',')
		f := b[i:]
		if j >= 0 {
			f = b[i : i+j]
		}
		if k := bytes.IndexByte(f, '"'); k >= 0 && len(trimSpace(f[:k])) > 0 {
			return nil, 0, &InputError{File: r.name, Line: r.line,
				Err: fmt.Errorf("character %d: a quote inside an unquoted field (quote the field and write the quote twice)", i+k+1)}
		} else if k >= 0 {
			// Spaces before an opening quote: the field is quoted.
			i += k
			continue
		}
		buf = append(buf, f...)
		ends = append(ends, len(buf))
		if j < 0 {
			break
		}
		i += j + 1
	}
	f := r.fields[:0]
	prev := 0
	for _, e := range ends {
		f = append(f, buf[prev:e:e])
		prev = e
	}
	r.quoted, r.ends, r.fields = buf, ends, f
	return f, start, nil
}
