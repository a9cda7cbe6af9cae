// Package kv reads KEY=VALUE pairs: the one parser of every flag that
// takes them (run and signal params, param files, tags, metrics, unit
// attributes, covariates, weights, key columns), so that they all follow
// one rule.
//
// The rule: a pair is split at its first '=', so the value may hold '='
// (a URL, a CEL expression). The key is trimmed of surrounding white space
// and may not be empty. The value is kept as written and may be empty; a
// caller whose values must not be empty, or must be numbers, checks that
// itself. A key given twice is an error naming the key and where it was
// given, whatever the two values: one of them would be dropped silently.
package kv

import (
	"errors"
	"fmt"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
)

// The problems Parse reports, each wrapped in an *Error and marked
// invalid input (exit 2, HTTP 400).
var (
	ErrNoEquals  = fault.New(fault.Invalid, "no '='")
	ErrEmptyKey  = fault.New(fault.Invalid, "the key is empty")
	ErrDuplicate = fault.New(fault.Invalid, "given twice")
)

// Error is a pair Parse refused: where it was given (a flag, such as
// --param), the pair as given, the form wanted (such as NAME=VALUE), the
// key when there is one, and which problem (ErrNoEquals, ErrEmptyKey or
// ErrDuplicate).
type Error struct {
	Where string
	Pair  string
	Form  string
	Key   string
	Err   error
}

func (e *Error) Error() string {
	if errors.Is(e.Err, ErrDuplicate) {
		return fmt.Sprintf("%s: %q given twice", e.Where, e.Key)
	}
	msg := fmt.Sprintf("%s %q: write %s", e.Where, e.Pair, e.Form)
	if errors.Is(e.Err, ErrEmptyKey) {
		msg += " (the key is empty)"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Parse reads pairs by the package's rule. where and form name the flag
// and the pair's form in errors: Parse("--param", "NAME=VALUE", params).
// No pairs is an empty map.
func Parse(where, form string, pairs []string) (map[string]string, error) {
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok:
			return nil, &Error{Where: where, Pair: p, Form: form, Err: ErrNoEquals}
		case k == "":
			return nil, &Error{Where: where, Pair: p, Form: form, Err: ErrEmptyKey}
		}
		if _, dup := out[k]; dup {
			return nil, &Error{Where: where, Pair: p, Form: form, Key: k, Err: ErrDuplicate}
		}
		out[k] = v
	}
	return out, nil
}
