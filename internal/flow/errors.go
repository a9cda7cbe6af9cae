package flow

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
)

// Error is one problem with a flow definition. File and Line are set when the
// problem was found in a file; Field is the path of the offending field, such
// as "steps[1].needs[0]" or "params.epochs.default".
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

// Error formats the problem as "file:line:col: field: msg", leaving out the
// parts that are unknown.
// Is sorts a problem of a flow file as invalid input.
func (e *Error) Is(target error) bool { return target == fault.Invalid }

func (e *Error) Error() string {
	var b strings.Builder
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			loc += ":" + strconv.Itoa(e.Column)
		}
	}
	if loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one flow definition, in file order.
type Errors []*Error

// Error joins the problems, one a line.
// Is sorts problems of a flow file as invalid input.
func (es Errors) Is(target error) bool { return target == fault.Invalid }

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors bounds the report: past a few dozen problems the rest are
// usually consequences of the first ones.
const maxErrors = 20

// errorList collects problems while checking a flow.
type errorList []*Error

func (l *errorList) add(field, format string, args ...any) {
	*l = append(*l, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// result sorts the problems by position (unpositioned ones keep their order
// after positioned ones), caps them and returns nil when there are none.
func (l errorList) result(file string) error {
	if len(l) == 0 {
		return nil
	}
	es := slices.Clone(l)
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(es) > maxErrors {
		es = append(es[:maxErrors], &Error{Msg: fmt.Sprintf("too many problems: showing the first %d of %d", maxErrors, len(l))})
	}
	for _, e := range es {
		e.File = file
	}
	return Errors(es)
}

var simpleKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// keyPath extends a field path with a mapping key: "params" + "epochs" is
// "params.epochs"; keys that would be ambiguous are quoted: params["a.b"].
func keyPath(base, key string) string {
	if !simpleKeyRE.MatchString(key) {
		return base + "[" + strconv.Quote(key) + "]"
	}
	if base == "" {
		return key
	}
	return base + "." + key
}

// indexPath extends a field path with a list index: "steps[1]".
func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

// parentPath drops the last element of a field path, or returns false at
// the root.
func parentPath(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return "", true
	}
	return p[:i], true
}

// within reports whether field p is at or below field q.
func within(p, q string) bool {
	if q == "" || p == q {
		return true
	}
	return strings.HasPrefix(p, q) && (p[len(q)] == '.' || p[len(q)] == '[')
}
