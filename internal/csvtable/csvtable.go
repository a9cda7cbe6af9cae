// Package csvtable reads CSV tables: a header line of unique column names,
// then records of as many fields. It is the one CSV reader of the
// statistics commands (abtest's experiment tables, drift's reference and
// current data), chosen because it is the faster: an unquoted line is
// split where its commas are, without copying, and a number takes a fast
// path (see BenchmarkRecords against encoding/csv).
//
// The rules, one set for every caller: blank lines are skipped; quoted
// fields are read as RFC 4180 has them (commas, quotes written twice and
// line breaks inside quotes); a header name and every cell is trimmed of
// surrounding white space, and the first name of a byte order mark; a
// header name may not be empty or repeated; every record has the header's
// number of fields; a table has at least one record. Problems are
// *InputError, naming the input, the line and the column where they apply.
package csvtable

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"

	"github.com/baton-ml/baton/internal/fault"
)

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

// Reader reads one table: Header first, then Next until io.EOF.
type Reader struct {
	br     *bufio.Reader
	name   string
	names  []string
	hline  int // the header's line
	rows   int
	line   int   // the physical line last read, from 1
	bytes  int64 // bytes read so far
	long   []byte
	quoted []byte
	ends   []int
	fields [][]byte
}

// NewReader reads a table from r; name names it in errors (a file's path
// usually).
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 1<<20), name: name}
}

// Header reads the header line and returns the column names and the
// line they are on; io.EOF (unwrapped) when the input is empty, which
// each caller words with the header it wants.
func (r *Reader) Header() ([]string, int, error) {
	rec, line, err := r.record()
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, len(rec))
	seen := make(map[string]bool, len(rec))
	for i, h := range rec {
		if i == 0 {
			h = bytes.TrimPrefix(h, []byte("\ufeff")) // spreadsheet exports start with a BOM
		}
		s := string(TrimSpace(h))
		switch {
		case s == "":
			return nil, 0, &InputError{File: r.name, Line: line, Err: fmt.Errorf("column %d has no name", i+1)}
		case seen[s]:
			return nil, 0, &InputError{File: r.name, Line: line, Column: s, Err: errors.New("duplicate column name")}
		}
		seen[s] = true
		names[i] = s
	}
	r.names, r.hline = names, line
	return names, line, nil
}

// Next returns the next record's fields, each trimmed, and the line it
// starts on. The fields are valid until the next call. At the end it
// returns io.EOF, or an *InputError when there was no record at all.
func (r *Reader) Next() ([][]byte, int, error) {
	rec, line, err := r.record()
	if errors.Is(err, io.EOF) && r.rows == 0 {
		return nil, 0, &InputError{File: r.name, Line: r.hline, Err: errors.New("no data rows after the header")}
	}
	if err != nil {
		return nil, 0, err
	}
	if len(rec) != len(r.names) {
		return nil, 0, r.raggedRow(line, len(rec))
	}
	for i, f := range rec {
		rec[i] = TrimSpace(f)
	}
	r.rows++
	return rec, line, nil
}

// Rows is the number of records read so far.
func (r *Reader) Rows() int { return r.rows }

// BytesRead is how many bytes of the input were read so far, to size
// columns from the bytes per row.
func (r *Reader) BytesRead() int64 { return r.bytes }

func (r *Reader) raggedRow(line, got int) error {
	if got < len(r.names) {
		return &InputError{File: r.name, Line: line, Column: r.names[got],
			Err: fmt.Errorf("missing: the row has %d of the header's %d fields", got, len(r.names))}
	}
	return &InputError{File: r.name, Line: line,
		Err: fmt.Errorf("the row has %d fields, the header only %d (a value holding a comma needs quotes)", got, len(r.names))}
}

// readLine returns the next physical line without its line end; it is
// valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
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

// record returns the next record's fields, untrimmed (valid until the
// next call) and the line it starts on; io.EOF at the end.
func (r *Reader) record() ([][]byte, int, error) {
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
func (r *Reader) quotedRecord(b []byte) ([][]byte, int, error) {
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
		if k := bytes.IndexByte(f, '"'); k >= 0 && len(TrimSpace(f[:k])) > 0 {
			return nil, 0, &InputError{File: r.name, Line: r.line,
				Err: fmt.Errorf("character %d: a bare \" inside an unquoted field (quote the field and write the quote twice)", i+k+1)}
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

// TrimSpace trims white space: ASCII on a fast path, Unicode (a
// spreadsheet's no-break space) when an end is not ASCII.
func TrimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && (b[0] >= 0x80 || b[len(b)-1] >= 0x80) {
		return bytes.TrimSpace(b)
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// ParseFloat parses a cell as strconv.ParseFloat does, and ok when it is a
// number: an out-of-range value is one (±Inf, or 0 for a denormal), and so
// are "NaN" and "Inf", which callers treat as their rules say. Plain
// decimals ("-12.3456") of up to 15 digits take a fast path that is exact
// for the same reason as strconv's (an integer below 2⁵³ divided by an
// exact power of ten rounds once).
func ParseFloat(b []byte) (f float64, ok bool) {
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
	return f, true
}
