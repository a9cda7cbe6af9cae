package flow

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
)

// Entry is one definition of an applied list (an endpoint, an
// experiment): it names itself and checks the rules that need nothing
// else, naming fields under at.
type Entry interface {
	EntryName() string
	Problems(at string) Errors
}

// Applied is a decoded list of definitions, from a file (the list under a
// key such as "endpoints:") or an API body (a JSON array), with where each
// field was written and what did not decode. Endpoints and experiments are
// applied through it; their packages add the checks against the store.
type Applied[T Entry] struct {
	Items  []T
	kind   string // "endpoint": one item, for messages
	plural string // "endpoints": the file's key, for messages
	root   string // the file's key, or "" for an API body
	loc    *Located
	failed Errors
}

// NewApplied holds items given in Go, without positions.
func NewApplied[T Entry](items []T, kind, plural string) *Applied[T] {
	return &Applied[T]{Items: items, kind: kind, plural: plural, root: plural}
}

// ReadApplied reads a definitions file into F and takes its list with
// items; every problem of the file on its own is reported at once, each as
// file:line:column: field: message (Errors). The list is returned with the
// problems, so that a caller can look for more (references) before
// reporting.
func ReadApplied[F any, T Entry](path, kind, plural string, items func(*F) []T) (*Applied[T], error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the %s file: %v", plural, err)}}
	}
	var f F
	loc, err := Decode(path, data, &f)
	a := &Applied[T]{Items: items(&f), kind: kind, plural: plural, root: plural, loc: loc}
	if err == nil && len(a.Items) == 0 {
		return nil, Errors{{File: path, Line: 1, Column: 1, Msg: fmt.Sprintf("no %s: the file lists them under %s:", plural, plural)}}
	}
	errors.As(err, &a.failed)
	return a, a.Check()
}

// ParseApplied reads an API body, a JSON array of definitions. Problems
// name the JSON field ("[0].fallback.model") and where in the body it is
// (body:LINE:COLUMN).
func ParseApplied[T Entry](body []byte, kind, plural string) (*Applied[T], error) {
	var items []T
	loc, err := Decode("body", body, &items)
	a := &Applied[T]{Items: items, kind: kind, plural: plural, loc: loc}
	if err == nil && len(items) == 0 {
		return nil, Errors{{Msg: fmt.Sprintf("no %s: the body is a JSON array of %s", plural, plural)}}
	}
	errors.As(err, &a.failed)
	return a, a.Check()
}

// At is the field path of item i: "endpoints[2]" in a file, "[2]" in a
// body.
func (a *Applied[T]) At(i int) string {
	return a.root + "[" + strconv.Itoa(i) + "]"
}

// Problems are the decoding problems and each item's own, plus names
// declared twice; a field that failed to decode is not judged again.
func (a *Applied[T]) Problems() Errors {
	errs := slices.Clone(a.failed)
	fields := a.failed.Fields()
	seen := map[string]bool{}
	for i, it := range a.Items {
		at := a.At(i)
		for _, pe := range it.Problems(at) {
			if !Within(pe.Field, fields) {
				errs = append(errs, pe)
			}
		}
		if name := it.EntryName(); name != "" && seen[name] {
			errs = append(errs, &Error{Field: at + ".name", Msg: fmt.Sprintf("%s %q is declared twice", a.kind, name)})
		}
		seen[it.EntryName()] = true
	}
	return errs
}

// Check places the problems found without the store.
func (a *Applied[T]) Check() error { return a.loc.Place(a.Problems()) }

// Report places every problem at once: the list's own and those found
// later (references to the store), leaving out a later one about a field
// that did not decode.
func (a *Applied[T]) Report(later Errors) error {
	errs := a.Problems()
	fields := a.failed.Fields()
	for _, e := range later {
		if !Within(e.Field, fields) {
			errs = append(errs, e)
		}
	}
	return a.loc.Place(errs)
}

// Place gives problems their positions in the document.
func (a *Applied[T]) Place(errs Errors) error { return a.loc.Place(errs) }
