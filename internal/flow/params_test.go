package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func paramsFlow(t *testing.T) *Flow {
	return mustParse(t, `
name: p
params:
  s: {default: hi}
  i: {type: int, default: 1}
  f: {type: float, default: 0.5}
  b: {type: bool, default: true}
  j: {type: json, default: {a: 1}}
  req: {type: int}
steps: [{name: a, run: "true"}]
`)
}

func TestResolveParams(t *testing.T) {
	f := paramsFlow(t)
	for _, tc := range []struct {
		name  string
		given map[string]string
		want  map[string]string
	}{
		{"defaults", map[string]string{"req": "7"},
			map[string]string{"s": `"hi"`, "i": `1`, "f": `0.5`, "b": `true`, "j": `{"a":1}`, "req": `7`}},
		{"every type", map[string]string{"s": `a "b" <c>`, "i": "-42", "f": "1e3", "b": "F", "j": ` { "z" : [1, 2.50], "a" : null } `, "req": "0"},
			map[string]string{"s": `"a \"b\" <c>"`, "i": `-42`, "f": `1000`, "b": `false`, "j": `{"a":null,"z":[1,2.50]}`, "req": `0`}},
		{"empty string", map[string]string{"s": "", "req": "1"},
			map[string]string{"s": `""`, "i": `1`, "f": `0.5`, "b": `true`, "j": `{"a":1}`, "req": `1`}},
		{"json scalar", map[string]string{"j": `"x"`, "req": "1"},
			map[string]string{"s": `"hi"`, "i": `1`, "f": `0.5`, "b": `true`, "j": `"x"`, "req": `1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.ResolveParams(tc.given)
			if err != nil {
				t.Fatal(err)
			}
			gs := map[string]string{}
			for k, v := range got {
				gs[k] = string(v)
			}
			if len(gs) != len(tc.want) {
				t.Errorf("got %v, want %v", gs, tc.want)
			}
			for k, w := range tc.want {
				if gs[k] != w {
					t.Errorf("%s = %s, want %s", k, gs[k], w)
				}
			}
		})
	}
}

func TestResolveParamsErrors(t *testing.T) {
	f := paramsFlow(t)
	for _, tc := range []struct {
		name   string
		given  map[string]string
		field  string
		phrase string
	}{
		{"undeclared", map[string]string{"req": "1", "nosuch": "1"}, "params.nosuch", `flow "p" has no param "nosuch" (declared: s, i, f, b, j, req)`},
		{"typo", map[string]string{"req": "1", "rek": "1"}, "params.rek", `did you mean "req"?`},
		{"missing required", map[string]string{}, "params.req", `param "req" is required (int)`},
		{"int", map[string]string{"req": "1.5"}, "params.req", `"1.5" is not an int`},
		{"int overflow", map[string]string{"req": "99999999999999999999"}, "params.req", "is not an int"},
		{"float", map[string]string{"req": "1", "f": "x"}, "params.f", `"x" is not a float`},
		{"float inf", map[string]string{"req": "1", "f": "Inf"}, "params.f", "is not a float"},
		{"bool", map[string]string{"req": "1", "b": "yes"}, "params.b", `"yes" is not a bool`},
		{"json", map[string]string{"req": "1", "j": "{a: 1}"}, "params.j", "is not valid JSON"},
		{"json trailing", map[string]string{"req": "1", "j": "1 2"}, "params.j", "is not valid JSON"},
		{"too large", map[string]string{"req": "1", "s": strings.Repeat("x", MaxParam+1)}, "params.s", "the value is 4 MiB (4194305 bytes), over the 4 MiB (4194304 bytes) limit of a param"},
		{"too large json", map[string]string{"req": "1", "j": `["` + strings.Repeat("x", MaxParam) + `"]`}, "params.j", "limit of a param"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.ResolveParams(tc.given)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("ResolveParams = %v, want Errors", err)
			}
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.phrase) {
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tc.field, tc.phrase, es)
		})
	}

	none := mustParse(t, "name: none\nsteps: [{name: a, run: b}]\n")
	if _, err := none.ResolveParams(map[string]string{"x": "1"}); err == nil || !strings.Contains(err.Error(), "declares no params") {
		t.Errorf("undeclared param on a flow without params: %v", err)
	}
	if got, err := none.ResolveParams(nil); err != nil || len(got) != 0 {
		t.Errorf("no params: %v, %v", got, err)
	}
}

func TestResolveParamsValuesPassValidate(t *testing.T) {
	f := paramsFlow(t)
	got, err := f.ResolveParams(map[string]string{"req": "5", "f": "2", "j": "[1]"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Params {
		if m := valueProblem(p.Type, got[p.Name]); m != "" {
			t.Errorf("%s = %s: %s", p.Name, got[p.Name], m)
		}
	}
}

// A value too large for the environment is still a param: it reaches
// shell tasks as a file. Only values over MaxParam are refused.
func TestParamSizes(t *testing.T) {
	f := paramsFlow(t)
	big := `{"rows":"` + strings.Repeat("x", 189<<10) + `"}`
	got, err := f.ResolveParams(map[string]string{"req": "1", "j": big})
	if err != nil {
		t.Fatal(err)
	}
	if in := EnvParams(got); in["j"] || !in["s"] || !in["req"] {
		t.Fatalf("EnvParams: %v", in)
	}
	str := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("y", n) + `"`) }
	if in := EnvParams(map[string]json.RawMessage{"a": str(MaxEnvParam - 1), "b": str(MaxEnvParam)}); !in["a"] || in["b"] {
		t.Fatalf("the line of one param: %v", in)
	}
	// Eighty params of 31 KiB each fit one by one but not together (the
	// audit's "argument list too long"): the smallest go in the
	// environment up to the total, the rest in files, the same way each
	// time.
	many := map[string]json.RawMessage{}
	for i := range 80 {
		many[fmt.Sprintf("p%02d", i)] = str(31000 + i)
	}
	in := EnvParams(many)
	total := 0
	for name := range in {
		total += len(name) + len(ParamEnv(many[name]))
	}
	if len(in) == 0 || len(in) == 80 || total > MaxEnvParams || !in["p00"] || in["p79"] {
		t.Fatalf("80 params: %d in the environment, %d bytes", len(in), total)
	}
	if _, err := CheckValue(String, json.RawMessage(`"`+strings.Repeat("y", MaxParam)+`"`)); err == nil ||
		!strings.Contains(err.Error(), "(4194304 bytes) limit") {
		t.Fatalf("CheckValue of a huge string: %v", err)
	}
	for n, want := range map[int64]string{5: "5 bytes", 189 << 10: "189 KiB", 4 << 20: "4 MiB", 5<<20 + 1<<19: "5.5 MiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParamEnv(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"hello world"`, "hello world"},
		{`"a\nb \u00e9 \"q\""`, "a\nb é \"q\""},
		{`42`, "42"},
		{`0.5`, "0.5"},
		{`true`, "true"},
		{`null`, "null"},
		{`{ "a" : [1, 2] }`, `{"a":[1,2]}`},
		{`["x", "y"]`, `["x","y"]`},
		{`not json`, "not json"},
	} {
		if got := ParamEnv(json.RawMessage(tc.in)); got != tc.want {
			t.Errorf("ParamEnv(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		t      ParamType
		in     string
		want   string
		phrase string // the error's, when want is ""
	}{
		{String, "a <b> \"c\"", `"a <b> \"c\""`, ""},
		{"", "x", `"x"`, ""},
		{String, "", `""`, ""},
		{Int, "42", "42", ""},
		{Int, "-9223372036854775808", "-9223372036854775808", ""},
		{Int, "9223372036854775808", "", `"9223372036854775808" is not an int`},
		{Int, "1.0", "", `"1.0" is not an int: write a whole number such as 42`},
		{Int, " 1", "", "is not an int"},
		{Float, "1e3", "1000", ""},
		{Float, "0.25", "0.25", ""},
		{Float, "-3", "-3", ""},
		{Float, "NaN", "", `"NaN" is not a float`},
		{Float, "1e999", "", "is not a float"},
		{Bool, "true", "true", ""},
		{Bool, "0", "false", ""},
		{Bool, "yes", "", `"yes" is not a bool: write true or false`},
		{JSON, ` {"b": 1, "a": [true, null]} `, `{"a":[true,null],"b":1}`, ""},
		{JSON, `"s"`, `"s"`, ""},
		{JSON, "{a: 1}", "", "is not valid JSON"},
		{JSON, "", "", "is not valid JSON"},
		{"time", "x", "", `unknown param type "time"`},
	} {
		got, err := ParseValue(tc.t, tc.in)
		switch {
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("ParseValue(%s, %q) = %s, %v; want %s", tc.t, tc.in, got, err, tc.want)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.phrase)):
			t.Errorf("ParseValue(%s, %q) = %s, %v; want an error containing %q", tc.t, tc.in, got, err, tc.phrase)
		}
	}
}

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		t      ParamType
		in     string
		want   string
		phrase string // the error's, when want is ""
	}{
		{String, `"hi"`, `"hi"`, ""},
		{String, ` "\u0041<b>" `, `"A<b>"`, ""},
		{"", `"x"`, `"x"`, ""},
		{String, `3`, "", "want a string, got 3"},
		{String, `null`, "", "want a string, got null"},
		{String, `{"a": 1}`, "", `want a string, got {"a":1}`},
		{Int, `42`, "42", ""},
		{Int, `-7`, "-7", ""},
		{Int, `-0`, "0", ""},
		{Int, `3.0`, "3", ""},
		{Int, `1e3`, "1000", ""},
		{Int, `1.5E1`, "15", ""},
		{Int, `12000e-3`, "12", ""},
		{Int, `0e999999999999`, "0", ""},
		{Int, `9223372036854775807`, "9223372036854775807", ""},
		{Int, `-9223372036854775808`, "-9223372036854775808", ""},
		{Int, `"abc"`, "", `want an int, got "abc"`},
		{Int, `"3"`, "", `want an int, got "3"`},
		{Int, `true`, "", "want an int, got true"},
		{Int, `2.5`, "", "want an int, got 2.5, which is not a whole number"},
		{Int, `1e-999999999999`, "", "not a whole number"},
		{Int, `9223372036854775808`, "", "want an int, got 9223372036854775808, which does not fit in 64 bits"},
		{Int, `1e19`, "", "does not fit in 64 bits"},
		{Int, `1e999999999999`, "", "does not fit in 64 bits"},
		{Float, `0.5`, "0.5", ""},
		{Float, `2`, "2", ""},
		{Float, `1e3`, "1000", ""},
		{Float, `1e-400`, "0", ""},
		{Float, `1e999`, "", "want a float, got 1e999, which is too large"},
		{Float, `"0.5"`, "", `want a float, got "0.5"`},
		{Float, `null`, "", "want a float, got null"},
		{Bool, `true`, "true", ""},
		{Bool, ` false `, "false", ""},
		{Bool, `"true"`, "", `want a bool (true or false), got "true"`},
		{Bool, `1`, "", "want a bool (true or false), got 1"},
		{JSON, `{"b": [1, 2.50], "a": null}`, `{"a":null,"b":[1,2.50]}`, ""},
		{JSON, `null`, "null", ""},
		{JSON, `"x"`, `"x"`, ""},
		{Int, `{`, "", "{ is not valid JSON"},
		{JSON, `1 2`, "", "is not valid JSON: unexpected data after the value"},
		{String, ``, "", "no value"},
		{Int, "  ", "", "no value"},
		{"time", `1`, "", `unknown param type "time"`},
	} {
		got, err := CheckValue(tc.t, json.RawMessage(tc.in))
		switch {
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("CheckValue(%s, %s) = %s, %v; want %s", tc.t, tc.in, got, err, tc.want)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.phrase)):
			t.Errorf("CheckValue(%s, %s) = %s, %v; want an error containing %q", tc.t, tc.in, got, err, tc.phrase)
		}
	}
}

// TestCheckValueAgreesWithParseValue checks that a value given as text and
// the same value given as JSON end up as the same bytes: join keys and run
// params compare them.
func TestCheckValueAgreesWithParseValue(t *testing.T) {
	for _, tc := range []struct {
		t          ParamType
		text, json string
	}{
		{String, "a b", `"a b"`},
		{Int, "1000", `1e3`},
		{Int, "-5", `-5.0`},
		{Float, "1e3", `1000.0`},
		{Float, "0.1", `0.10`},
		{Bool, "true", `true`},
		{JSON, `{"a": [1]}`, `{ "a" : [1] }`},
	} {
		a, err1 := ParseValue(tc.t, tc.text)
		b, err2 := CheckValue(tc.t, json.RawMessage(tc.json))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("%s: ParseValue(%q) = %s, %v; CheckValue(%s) = %s, %v", tc.t, tc.text, a, err1, tc.json, b, err2)
		}
		if m := valueProblem(tc.t, b); m != "" {
			t.Errorf("CheckValue(%s, %s) = %s, which valueProblem refuses: %s", tc.t, tc.json, b, m)
		}
	}
}
