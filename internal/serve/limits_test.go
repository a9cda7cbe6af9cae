package serve

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/fault"
)

// The attribute limits hold at their bounds: what is at a limit passes,
// one more is refused as invalid input naming the field, told apart by
// ErrAttributes.
func TestCheckAttrsBounds(t *testing.T) {
	keys := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m["k"+strconv.Itoa(i)] = i
		}
		return m
	}
	for _, c := range []struct {
		name  string
		attrs map[string]any
		field string // "" when accepted
	}{
		{"none", nil, ""},
		{"64 keys", keys(MaxAttributes), ""},
		{"65 keys", keys(MaxAttributes + 1), "attributes"},
		{"a key of 64 bytes", map[string]any{strings.Repeat("k", MaxAttributeKey): 1}, ""},
		{"a key of 65 bytes", map[string]any{strings.Repeat("k", MaxAttributeKey+1): 1}, "attributes"},
		{"a string of 256 bytes", map[string]any{"s": strings.Repeat("é", MaxAttributeValue/2)}, ""},
		{"a string of 257 bytes", map[string]any{"s": strings.Repeat("x", MaxAttributeValue+1)}, "attributes.s"},
		{"scalars", map[string]any{"n": 1e300, "b": true, "z": nil}, ""},
		{"a short list", map[string]any{"l": []any{"a", "b"}}, ""},
		{"a long list", map[string]any{"l": []any{strings.Repeat("x", 200), strings.Repeat("y", 200)}}, "attributes.l"},
	} {
		err := checkAttrs("attributes", c.attrs)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		var fe *fault.Error
		if !errors.Is(err, ErrAttributes) || !errors.Is(err, fault.Invalid) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want ErrAttributes on field %s", c.name, err, c.field)
		}
	}
}
