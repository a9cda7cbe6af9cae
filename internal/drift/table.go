package drift

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/baton-ml/baton/internal/csvtable"
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

// InputError is a problem with an input file (csvtable's, the one
// reader's).
type InputError = csvtable.InputError

// ReadCSV reads a CSV table with a header line (csvtable's rules). name
// names the input in errors. A column is Numeric if every non-empty cell
// parses as a float, String otherwise. An empty cell is missing, and so is
// a NaN in a numeric column. A column without a single value is an error
// (*InputError), as are csvtable's (a ragged row, an empty or duplicate
// column name, no data rows).
func ReadCSV(r io.Reader, name string) (Table, error) {
	cr := csvtable.NewReader(r, name)
	header, headerLine, err := cr.Header()
	if errors.Is(err, io.EOF) {
		return Table{}, &InputError{File: name, Err: errors.New("empty file: want a header line")}
	}
	if err != nil {
		return Table{}, err
	}
	t := Table{Name: name, Columns: make([]Column, len(header))}
	cols := make([]columnReader, len(header))
	for i, h := range header {
		t.Columns[i].Name = h
		cols[i].numeric = true
	}
	lastLine := headerLine
	for {
		rec, line, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Table{}, err
		}
		lastLine = line
		for i, v := range rec {
			cols[i].add(v, line)
		}
	}
	t.Rows = cr.Rows()
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
// The cells' text is kept in one buffer (text, cut at ends), not a string
// each, in case a later cell turns the column into a string one: the
// values are then the cells as written ("1.0" stays "1.0").
type columnReader struct {
	numeric   bool
	nums      []float64
	text      []byte
	ends      []int
	firstText cell
}

func (c *columnReader) add(v []byte, line int) {
	if len(v) == 0 {
		return
	}
	c.text = append(c.text, v...)
	c.ends = append(c.ends, len(c.text))
	if !c.numeric {
		return
	}
	// Out-of-range values parse to ±Inf or 0: still numbers, just extreme
	// ones.
	if f, ok := csvtable.ParseFloat(v); ok {
		c.nums = append(c.nums, f)
		return
	}
	c.numeric = false
	c.nums = nil
	c.firstText = cell{line, string(v)}
}

func (c *columnReader) finish(col *Column) {
	if !c.numeric {
		// One string for the column, sliced: one allocation, not one a
		// cell.
		all := string(c.text)
		col.Strs = make([]string, len(c.ends))
		prev := 0
		for i, e := range c.ends {
			col.Strs[i] = all[prev:e]
			prev = e
		}
		col.Kind, col.firstText = String, c.firstText
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
