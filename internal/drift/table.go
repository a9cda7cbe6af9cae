package drift

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
)

// Kind is a column's type, as the report spells it.
type Kind string

// The kinds of column.
const (
	Numeric Kind = "numeric"
	String  Kind = "string"
)

// Table is a CSV file read by ReadCSV.
type Table struct {
	// Name is the file's name, used in error messages.
	Name    string
	Columns []Column
	// Rows is the number of data rows, header excluded.
	Rows int
}

// Column is one column of a Table. Missing (empty) cells are left out, so
// a column's values need not line up with another's.
type Column struct {
	Name string
	Kind Kind
	Nums []float64 // Numeric: the values, in file order
	Strs []string  // String: the values, in file order

	// firstText is where a String column first held something other than
	// a number, for the error when the other file has it numeric.
	firstText cell
}

type cell struct {
	line  int
	value string
}

// Len is the number of values (non-missing cells) of c.
func (c *Column) Len() int {
	if c.Kind == Numeric {
		return len(c.Nums)
	}
	return len(c.Strs)
}

// InputError is a problem with an input file, located as precisely as it
// can be: File always, Line and Column when they apply (0 and "" when not).
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

// ReadCSV reads a CSV table with a header line. name names the input in
// errors. A column is Numeric if every non-empty cell parses as a float,
// String otherwise. Cells are trimmed of surrounding spaces; an empty cell
// is missing, and so is a NaN in a numeric column. A ragged row, an empty
// or duplicate column name, no data rows or a column without a single value
// are errors (*InputError).
func ReadCSV(r io.Reader, name string) (Table, error) {
	cr := csv.NewReader(r)
	// Row lengths are checked here, to name the missing column.
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Table{}, &InputError{File: name, Err: errors.New("empty file: want a header line")}
	}
	if err != nil {
		return Table{}, parseError(name, err)
	}
	headerLine, _ := cr.FieldPos(0)
	t := Table{Name: name, Columns: make([]Column, len(header))}
	cols := make([]columnReader, len(header))
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheet exports start with a BOM
		}
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return Table{}, &InputError{File: name, Line: headerLine,
				Err: fmt.Errorf("column %d has no name", i+1)}
		case seen[h]:
			return Table{}, &InputError{File: name, Line: headerLine, Column: h, Err: errors.New("duplicate column name")}
		}
		seen[h] = true
		t.Columns[i].Name = h
		cols[i].numeric = true
	}
	lastLine := headerLine
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Table{}, parseError(name, err)
		}
		line, _ := cr.FieldPos(0)
		lastLine = line
		if len(rec) != len(header) {
			return Table{}, raggedRow(name, line, len(rec), t.Columns)
		}
		for i, v := range rec {
			cols[i].add(strings.TrimSpace(v), line)
		}
		t.Rows++
	}
	if t.Rows == 0 {
		return Table{}, &InputError{File: name, Line: headerLine, Err: errors.New("no data rows after the header")}
	}
	for i := range t.Columns {
		c := &t.Columns[i]
		cols[i].finish(c)
		if c.Len() == 0 {
			return Table{}, &InputError{File: name, Column: c.Name,
				Err: fmt.Errorf("no values: every cell in lines %d-%d is empty", headerLine+1, lastLine)}
		}
	}
	return t, nil
}

// columnReader collects a column's cells while its kind is still open.
type columnReader struct {
	numeric   bool
	nums      []float64
	strs      []string
	firstText cell
}

func (c *columnReader) add(v string, line int) {
	if v == "" {
		return
	}
	if c.numeric {
		f, err := strconv.ParseFloat(v, 64)
		if err == nil || errors.Is(err, strconv.ErrRange) {
			// Out-of-range values parse to ±Inf or 0 with ErrRange: still
			// numbers, just extreme ones. The text is kept as well, in
			// case a later cell turns the column into a string one.
			c.nums = append(c.nums, f)
			c.strs = append(c.strs, v)
			return
		}
		c.numeric = false
		c.nums = nil
		c.firstText = cell{line, v}
	}
	c.strs = append(c.strs, v)
}

func (c *columnReader) finish(col *Column) {
	if !c.numeric {
		col.Kind, col.Strs, col.firstText = String, c.strs, c.firstText
		return
	}
	col.Kind = Numeric
	// NaN is no value: it has no place in the order that PSI and KS need.
	nums := c.nums[:0]
	for _, f := range c.nums {
		if !math.IsNaN(f) {
			nums = append(nums, f)
		}
	}
	col.Nums = nums
}

func raggedRow(name string, line, got int, cols []Column) error {
	if got < len(cols) {
		return &InputError{File: name, Line: line, Column: cols[got].Name,
			Err: fmt.Errorf("missing: the row has %d of the header's %d fields", got, len(cols))}
	}
	return &InputError{File: name, Line: line,
		Err: fmt.Errorf("the row has %d fields, the header only %d (a value holding a comma needs quotes)", got, len(cols))}
}

// parseError relocates a csv.ParseError into an InputError.
func parseError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &InputError{File: name, Line: pe.Line, Err: fmt.Errorf("character %d: %w", pe.Column, pe.Err)}
	}
	return &InputError{File: name, Err: fmt.Errorf("read: %w", err)}
}
