package serve

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/baton-ml/baton/internal/fault"
)

// Limits of a request's attributes, and of the features a request to a
// personalized recommend endpoint gives: both become the bandit's logged
// context (and experiments' targeting input), so a request may not make
// the server keep an arbitrary document. A 0.9 MB attributes object was
// accepted and copied into every decision line of the page.
const (
	MaxAttributes     = 64  // keys
	MaxAttributeKey   = 64  // bytes of a key
	MaxAttributeValue = 256 // bytes of a string value; of another value written as JSON
)

// ErrAttributes is a request's attributes (or logged features) over the
// limits; the error's field names the attribute.
var ErrAttributes = fault.New(fault.Invalid, "attributes describe the unit with a few short values")

// checkAttrs holds m to the limits; field is the request's field
// (attributes or features), named in the error with the key.
func checkAttrs(field string, m map[string]any) error {
	bad := func(f, format string, args ...any) error {
		return &fault.Error{Kind: fault.Invalid, Field: f, Err: fmt.Errorf("%s (%w)", fmt.Sprintf(format, args...), ErrAttributes)}
	}
	if len(m) > MaxAttributes {
		return bad(field, "%d keys: at most %d", len(m), MaxAttributes)
	}
	for k, v := range m {
		if len(k) > MaxAttributeKey {
			return bad(field, "a key of %d bytes (%q...): at most %d", len(k), k[:16], MaxAttributeKey)
		}
		n, err := valueSize(v)
		if err != nil {
			return bad(field+"."+k, "%v", err)
		}
		if n > MaxAttributeValue {
			return bad(field+"."+k, "a value of %d bytes: at most %d", n, MaxAttributeValue)
		}
	}
	return nil
}

// valueSize is a string's length, or the size of another value written
// as JSON, without writing the usual values (strings, numbers, booleans):
// attributes are checked on the serving path.
func valueSize(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 4, nil
	case bool:
		return 5, nil
	case string:
		return len(v), nil
	case float64:
		return len(strconv.FormatFloat(v, 'g', -1, 64)), nil
	case json.Number:
		return len(v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("not a JSON value: %v", err)
	}
	return len(b), nil
}
