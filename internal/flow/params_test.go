package flow

import (
	"encoding/json"
	"errors"
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
		{"missing required", map[string]string{}, "params.req", `param "req" is required: pass --param req=VALUE (int)`},
		{"int", map[string]string{"req": "1.5"}, "params.req", `"1.5" is not an int`},
		{"int overflow", map[string]string{"req": "99999999999999999999"}, "params.req", "is not an int"},
		{"float", map[string]string{"req": "1", "f": "x"}, "params.f", `"x" is not a float`},
		{"float inf", map[string]string{"req": "1", "f": "Inf"}, "params.f", "is not a float"},
		{"bool", map[string]string{"req": "1", "b": "yes"}, "params.b", `"yes" is not a bool`},
		{"json", map[string]string{"req": "1", "j": "{a: 1}"}, "params.j", "is not valid JSON"},
		{"json trailing", map[string]string{"req": "1", "j": "1 2"}, "params.j", "is not valid JSON"},
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
