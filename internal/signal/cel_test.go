package signal

import (
	"encoding/json"
	"testing"
)

// TestConditionOverAMissingParam: a condition naming a param the signal
// lacks is not met (not an error), in both spellings; one whose params are
// all there is evaluated as written. Decided from the expression's parsed
// form, not from an error's text.
func TestConditionOverAMissingParam(t *testing.T) {
	t.Parallel()
	us := map[string]json.RawMessage{"region": json.RawMessage(`"US"`), "rows": json.RawMessage(`120`)}
	none := map[string]json.RawMessage{"rows": json.RawMessage(`120`)}
	for _, tc := range []struct {
		expr   string
		params map[string]json.RawMessage
		want   bool
	}{
		{`params.region == "US"`, us, true},
		{`params.region == "US"`, none, false},
		{`params["region"] == "US"`, none, false},
		{`params.region != "US"`, none, false},
		{`params.rows > 100 && params.region == "US"`, us, true},
		{`params.rows > 100`, none, true},
		{`has(params.region) || params.rows > 1000`, none, false},
		{`!has(params.region)`, none, true},
	} {
		p, err := Compile(tc.expr, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Bool(Input{Params: tc.params})
		if err != nil || got != tc.want {
			t.Errorf("%s over %v: %v %v, want %v", tc.expr, tc.params, got, err, tc.want)
		}
	}
	// A type error is an error, not a silent false.
	p, _ := Compile(`params.rows > "x"`, true)
	if _, err := p.Bool(Input{Params: us}); err == nil {
		t.Error("comparing a number with a string: no error")
	}
}
