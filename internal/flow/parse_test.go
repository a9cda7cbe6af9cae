package flow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Flow {
	t.Helper()
	f, err := Parse("flow.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n--- source:\n%s", err, src)
	}
	return f
}

func parseErrors(t *testing.T, src string) Errors {
	t.Helper()
	f, err := Parse("flow.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse accepted the flow, want an error: %+v\n--- source:\n%s", f, src)
	}
	if f != nil {
		t.Errorf("Parse returned a flow along with an error")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse error is %T, want flow.Errors: %v", err, err)
	}
	for _, e := range es {
		if e.File != "flow.yaml" {
			t.Errorf("error %q has File %q, want flow.yaml", e, e.File)
		}
	}
	return es
}

func TestParseSpecExample(t *testing.T) {
	// The flow of the spec's "Flow files" section, with the commands
	// inlined.
	src := `
name: train-recs
description: text
params:
  market: {default: US}
  epochs: {type: int, default: 3}
triggers:
  - signal: features_ready
    when: 'params.region == "US"'
  - on_finish: {flow: ingest}
  - cron: "0 2 * * *"
    timezone: UTC
concurrency: {max_runs: 1, strategy: sequential}
steps:
  - name: start
    run: ./prepare.sh
    retry: {attempts: 3, backoff: 200ms}
    timeout: 30s
  - name: shard
    needs: [start]
    foreach: items.json
    run: ./score.sh
  - name: join
    needs: [shard]
    run: ./merge.sh
    publish: [features_ready]
`
	got := mustParse(t, src)
	want := &Flow{
		Name:        "train-recs",
		Description: "text",
		Params: []Param{
			{Name: "market", Type: String, Default: json.RawMessage(`"US"`)},
			{Name: "epochs", Type: Int, Default: json.RawMessage(`3`)},
		},
		Triggers: []Trigger{
			{Signal: "features_ready", When: `params.region == "US"`},
			{OnFinish: &OnFinish{Flow: "ingest", Status: []string{"succeeded"}}},
			{Cron: "0 2 * * *", Timezone: "UTC"},
		},
		Concurrency: &Concurrency{MaxRuns: 1, Strategy: "sequential"},
		Steps: []Step{
			{Name: "start", Run: "./prepare.sh", Retry: Retry{Attempts: 3, Backoff: Duration(200 * time.Millisecond)}, Timeout: Duration(30 * time.Second)},
			{Name: "shard", Needs: []string{"start"}, Foreach: &Foreach{Artifact: "items.json"}, Run: "./score.sh"},
			{Name: "join", Needs: []string{"shard"}, Run: "./merge.sh", Publish: []string{"features_ready"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("Parse:\n%s\nwant:\n%s", g, w)
	}
}

func TestParseShapes(t *testing.T) {
	f := mustParse(t, `
name: shapes
params:
  s: {default: 42}            # any scalar is a string default, as written
  f: {type: float, default: 2}
  g: {type: float, default: 1e3}
  h: {type: int, default: 0x10}
  b: {type: bool, default: false}
  j: {type: json, default: {b: [1, "x", null], a: 1.5}}
  jn: {type: json, default: null}
  req: {type: int, description: required}
triggers:
  - on_finish: upstream
  - on_finish: {flow: other, status: [failed, succeeded]}
  - cron: "@every 5m"
concurrency: {strategy: parallel}
steps:
  - name: a
    run: |
      echo one
      echo two
    env: {N: 4, ON: true, TEXT: hi}
  - name: b
    needs: a
    foreach: [x, 2, {k: v}]
    run: >-
      echo
      folded
  - name: c
    needs: [a, b]
    foreach: '[3, "y"]'
    run: "true"
    publish: done
  - name: d
    needs: [b]
    foreach: b/sub/items.json
    run: "true"
`)
	defaults := map[string]string{}
	for _, p := range f.Params {
		defaults[p.Name] = string(p.Default)
	}
	wantDefaults := map[string]string{
		"s": `"42"`, "f": `2`, "g": `1000`, "h": `16`, "b": `false`,
		"j": `{"a":1.5,"b":[1,"x",null]}`, "jn": `null`, "req": ``,
	}
	if !reflect.DeepEqual(defaults, wantDefaults) {
		t.Errorf("defaults = %v, want %v", defaults, wantDefaults)
	}
	if !f.Param("req").Required() || f.Param("jn").Required() {
		t.Errorf("req should be required and jn not")
	}
	if got := f.Triggers[0].OnFinish; got.Flow != "upstream" || !reflect.DeepEqual(got.Status, []string{"succeeded"}) {
		t.Errorf("on_finish string = %+v", got)
	}
	if got := f.Triggers[1].OnFinish.Status; !reflect.DeepEqual(got, []string{"failed", "succeeded"}) {
		t.Errorf("status = %v", got)
	}
	if *f.Concurrency != (Concurrency{MaxRuns: 1, Strategy: "parallel"}) {
		t.Errorf("concurrency = %+v", *f.Concurrency)
	}
	if got := f.Steps[0].Run; got != "echo one\necho two\n" {
		t.Errorf("literal run = %q", got)
	}
	if got := f.Steps[0].Env; !reflect.DeepEqual(got, map[string]string{"N": "4", "ON": "true", "TEXT": "hi"}) {
		t.Errorf("env = %v", got)
	}
	if got := f.Steps[1].Run; got != "echo folded" {
		t.Errorf("folded run = %q", got)
	}
	if got := f.Steps[1].Needs; !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("needs as a string = %v", got)
	}
	items := func(fe *Foreach) []string {
		var out []string
		for _, it := range fe.Items {
			out = append(out, string(it))
		}
		return out
	}
	if got := items(f.Steps[1].Foreach); !reflect.DeepEqual(got, []string{`"x"`, `2`, `{"k":"v"}`}) {
		t.Errorf("YAML list foreach = %v", got)
	}
	if got := items(f.Steps[2].Foreach); !reflect.DeepEqual(got, []string{`3`, `"y"`}) {
		t.Errorf("JSON string foreach = %v", got)
	}
	if got := f.Steps[2].Publish; !reflect.DeepEqual(got, []string{"done"}) {
		t.Errorf("publish as a string = %v", got)
	}
	if got := f.Steps[3].Foreach.Artifact; got != "b/sub/items.json" {
		t.Errorf("artifact = %q", got)
	}
}

func TestParseByteOrderMark(t *testing.T) {
	if f := mustParse(t, "\xef\xbb\xbfname: bom\r\nsteps: [{name: a, run: b}]\r\n"); f.Name != "bom" {
		t.Errorf("name = %q", f.Name)
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	f := mustParse(t, `
name: anchors
x-defaults: &defaults      # x- keys are ignored: a home for anchors
  retry: &retry {attempts: 3, backoff: 1s}
  timeout: 1m
  env: &env {A: "1", B: "2"}
steps:
  - name: a
    <<: *defaults
    run: "true"
  - name: b
    <<: *defaults
    timeout: 5s             # an explicit key wins over a merged one
    env:
      <<: [*env, {B: "x", C: "3"}]   # earlier sources win
      D: "4"
    run: "true"
  - name: c
    retry: *retry
    needs: &ab [a, b]
    run: "true"
  - name: d
    needs: *ab
    run: !!str 123
`)
	a, b, c, d := f.Steps[0], f.Steps[1], f.Steps[2], f.Steps[3]
	wantRetry := Retry{Attempts: 3, Backoff: Duration(time.Second)}
	if a.Retry != wantRetry || b.Retry != wantRetry || c.Retry != wantRetry {
		t.Errorf("merged retry = %+v %+v %+v", a.Retry, b.Retry, c.Retry)
	}
	if a.Timeout != Duration(time.Minute) || b.Timeout != Duration(5*time.Second) {
		t.Errorf("timeouts = %v %v", a.Timeout, b.Timeout)
	}
	if !reflect.DeepEqual(b.Env, map[string]string{"A": "1", "B": "2", "C": "3", "D": "4"}) {
		t.Errorf("merged env = %v", b.Env)
	}
	if !reflect.DeepEqual(d.Needs, []string{"a", "b"}) {
		t.Errorf("aliased needs = %v", d.Needs)
	}
	if d.Run != "123" {
		t.Errorf("!!str run = %q", d.Run)
	}
}

func TestParseDigestIgnoresFormatting(t *testing.T) {
	a := mustParse(t, `
name: d
params: {j: {type: json, default: {b: 1, a: [1, 2]}}}
steps: [{name: s, run: "true", env: {Y: "1", X: "2"}}]
`)
	b := mustParse(t, `
# the same flow, written differently
name: d
params:
  j:
    type: json
    default: '{"a": [1, 2], "b": 1}'
steps:
  - run: 'true'
    name: s
    env:
      X: "2"
      Y: "1"
`)
	// A json default written as a YAML string is a JSON string, not an
	// object: the two differ.
	if a.Digest() == b.Digest() {
		t.Fatalf("a string default and an object default have the same digest")
	}
	b.Params[0].Default = json.RawMessage(`{"a":[1,2],"b":1}`)
	if a.Digest() != b.Digest() {
		t.Errorf("equal flows have different digests")
	}
}

// errCase is a flow that must be refused with a problem at field and line
// whose message contains phrase.
type errCase struct {
	name   string
	src    string
	field  string
	line   int
	phrase string
}

func checkErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.src)
			for _, e := range es {
				if e.Field == tc.field && e.Line == tc.line && strings.Contains(e.Msg, tc.phrase) {
					if e.Column == 0 {
						t.Errorf("error %q has no column", e)
					}
					return
				}
			}
			t.Errorf("no error at %s line %d containing %q; got:\n%v", tc.field, tc.line, tc.phrase, es)
		})
	}
}

func TestParseErrorsYAML(t *testing.T) {
	checkErrCases(t, []errCase{
		{"syntax", "name: x\nsteps: [a, b\n", "", 2, "invalid YAML"},
		{"tab indentation", "name: x\nsteps:\n\t- name: a\n", "", 3, "invalid YAML"},
		{"duplicate key", "name: x\nname: y\nsteps: []\n", "", 2, "already defined"},
		{"empty file", "# nothing\n", "", 1, "the file is empty"},
		{"not UTF-8", "name: x\ndescription: caf\xe9\nsteps: [{name: a, run: b}]\n", "", 2, "not valid UTF-8"},
		{"two documents", "name: a\n---\nname: b\n", "", 3, "2 YAML documents"},
		{"not a mapping", "- a\n- b\n", "", 1, "not a list"},
		{"unknown alias", "name: x\nsteps:\n  - name: a\n    run: *nope\n", "steps[0].run", 4, "refers to no anchor"},
		{"recursive alias", "name: x\nsteps: &s\n  - *s\n", "steps[0]", 3, "refers to no anchor"},
		{"bad merge", "name: x\nsteps:\n  - <<: 3\n    name: a\n    run: b\n", "steps[0]", 3, "merge key"},
		{"unknown tag", "name: !custom x\nsteps: [{name: a, run: b}]\n", "name", 1, "unsupported tag !custom"},
		{"bad int tag", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: !!int abc}\n", "steps[0].retry.attempts", 5, "not a 64-bit integer"},
		{"mapping key", "name: x\n? [a]\n: 1\nsteps: [{name: a, run: b}]\n", "", 3, "invalid YAML"},
		{"deep nesting", "name: x\nsteps: [{name: a, run: b, foreach: " + strings.Repeat("[", 120) + strings.Repeat("]", 120) + "}]\n", "steps[0].foreach" + strings.Repeat("[0]", 98), 2, "nested more than"},
	})
}

func TestParseErrorsTopLevel(t *testing.T) {
	checkErrCases(t, []errCase{
		{"unknown key", "name: x\nstep: []\nsteps: [{name: a, run: b}]\n", "step", 2, `unknown key "step" (allowed: concurrency, description, name, params, signals, steps, triggers); did you mean "steps"?`},
		{"no name", "steps: [{name: a, run: b}]\n", "name", 1, "the flow has no name"},
		{"bad name", "name: My Flow\nsteps: [{name: a, run: b}]\n", "name", 1, `"My Flow" is not a valid flow name`},
		{"name not a string", "name: 12\nsteps: [{name: a, run: b}]\n", "name", 1, `put it in quotes ("12")`},
		{"name empty", "name:\nsteps: [{name: a, run: b}]\n", "name", 1, "has no value"},
		{"no steps", "name: x\n", "steps", 1, "the flow has no steps"},
		{"empty steps", "name: x\nsteps: []\n", "steps", 2, "the flow has no steps"},
		{"steps not a list", "name: x\nsteps: {a: 1}\n", "steps", 2, "must be a list of steps"},
		{"description not text", "name: x\ndescription: [a]\nsteps: [{name: a, run: b}]\n", "description", 2, "must be a string"},
	})
}

func TestParseErrorsParams(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"bare scalar", "name: x\nparams:\n  market: US\n" + steps, "params.market", 3, "write market: {default: US}"},
		{"null param", "name: x\nparams:\n  market:\n" + steps, "params.market", 3, "has no value"},
		{"bad name", "name: x\nparams:\n  Market: {default: US}\n" + steps, "params.Market", 3, "not a valid param name"},
		{"odd name quoted in path", "name: x\nparams:\n  a.b: {default: US}\n" + steps, `params["a.b"]`, 3, "not a valid param name"},
		{"unknown key", "name: x\nparams:\n  m: {defualt: US}\n" + steps, "params.m.defualt", 3, `did you mean "default"?`},
		{"unknown type", "name: x\nparams:\n  m: {type: integer}\n" + steps, "params.m.type", 3, `unknown type "integer" (types are: string, int, float, bool, json)`},
		{"quoted int", "name: x\nparams:\n  n: {type: int, default: \"3\"}\n" + steps, "params.n.default", 3, "write 3 without quotes"},
		{"float for int", "name: x\nparams:\n  n: {type: int, default: 2.5}\n" + steps, "params.n.default", 3, "not a whole number"},
		{"huge int", "name: x\nparams:\n  n: {type: int, default: 99999999999999999999}\n" + steps, "params.n.default", 3, "does not fit"},
		{"string for float", "name: x\nparams:\n  n: {type: float, default: abc}\n" + steps, "params.n.default", 3, "must be a number"},
		{"inf float", "name: x\nparams:\n  n: {type: float, default: .inf}\n" + steps, "params.n.default", 3, "not a finite number"},
		{"yes for bool", "name: x\nparams:\n  n: {type: bool, default: yes}\n" + steps, "params.n.default", 3, "YAML 1.2 reads yes as a string"},
		{"quoted bool", "name: x\nparams:\n  n: {type: bool, default: 'true'}\n" + steps, "params.n.default", 3, "without quotes"},
		{"list for string", "name: x\nparams:\n  n: {default: [a]}\n" + steps, "params.n.default", 3, "must be a single value"},
		{"null default", "name: x\nparams:\n  n:\n    default:\n" + steps, "params.n.default", 4, `write "" for an empty string`},
		{"nan json", "name: x\nparams:\n  n: {type: json, default: [.nan]}\n" + steps, "params.n.default", 3, "cannot be written in JSON"},
		{"params not a mapping", "name: x\nparams: [a]\n" + steps, "params", 2, "must be a mapping"},
	})
}

func TestParseErrorsSteps(t *testing.T) {
	checkErrCases(t, []errCase{
		{"unknown need", "name: x\nsteps:\n  - name: a\n    run: b\n  - name: b\n    needs: [a, missing]\n    run: c\n",
			"steps[1].needs[1]", 6, `unknown step "missing" (steps are: a, b)`},
		{"unknown need typo", "name: x\nsteps:\n  - name: start\n    run: b\n  - name: b\n    needs: [strat]\n    run: c\n",
			"steps[1].needs[0]", 6, `did you mean "start"?`},
		{"need as string", "name: x\nsteps:\n  - name: a\n    needs: zz\n    run: b\n", "steps[0].needs[0]", 4, `unknown step "zz"`},
		{"self need", "name: x\nsteps:\n  - name: a\n    needs: [a]\n    run: b\n", "steps[0].needs[0]", 4, "needs itself"},
		{"duplicate need", "name: x\nsteps:\n  - name: a\n    run: b\n  - name: b\n    needs: [a, a]\n    run: b\n", "steps[1].needs[1]", 6, "listed twice"},
		{"needs not strings", "name: x\nsteps:\n  - name: a\n    needs: [{a: 1}]\n    run: b\n", "steps[0].needs[0]", 4, "must be a string"},
		{"duplicate step", "name: x\nsteps:\n  - name: a\n    run: b\n  - name: a\n    run: c\n", "steps[1].name", 5, `step "a" is defined twice (first as steps[0])`},
		{"bad step name", "name: x\nsteps:\n  - name: A\n    run: b\n", "steps[0].name", 3, "not a valid step name"},
		{"no step name", "name: x\nsteps:\n  - run: b\n", "steps[0].name", 3, "the step has no name"},
		{"no run", "name: x\nsteps:\n  - name: a\n", "steps[0].run", 3, "the step has no run"},
		{"empty run", "name: x\nsteps:\n  - name: a\n    run: '  '\n", "steps[0].run", 4, "is empty"},
		{"bool run", "name: x\nsteps:\n  - name: a\n    run: true\n", "steps[0].run", 4, `put it in quotes ("true")`},
		{"step not a mapping", "name: x\nsteps:\n  - a\n", "steps[0]", 3, "must be a mapping with keys env, foreach, join, labels, name, needs, publish, resources, retry, run, subflow, switch, timeout, training_set, wait"},
		{"unknown step key", "name: x\nsteps:\n  - name: a\n    run: b\n    depends: [c]\n", "steps[0].depends", 5, "unknown key"},
		{"timeout bare number", "name: x\nsteps:\n  - name: a\n    run: b\n    timeout: 30\n", "steps[0].timeout", 5, `write a duration such as "30s"`},
		{"timeout bad", "name: x\nsteps:\n  - name: a\n    run: b\n    timeout: soon\n", "steps[0].timeout", 5, "is not a duration"},
		{"timeout zero", "name: x\nsteps:\n  - name: a\n    run: b\n    timeout: 0s\n", "steps[0].timeout", 5, "must be more than 0"},
		{"timeout negative", "name: x\nsteps:\n  - name: a\n    run: b\n    timeout: -5s\n", "steps[0].timeout", 5, "must be more than 0"},
		{"attempts zero", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: 0}\n", "steps[0].retry.attempts", 5, "between 1 and 100"},
		{"attempts too many", "name: x\nsteps:\n  - name: a\n    run: b\n    retry:\n      attempts: 101\n", "steps[0].retry.attempts", 6, "between 1 and 100"},
		{"attempts quoted", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: '3'}\n", "steps[0].retry.attempts", 5, "write 3 without quotes"},
		{"backoff negative", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: 2, backoff: -1s}\n", "steps[0].retry.backoff", 5, "must not be negative"},
		{"backoff bare", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: 2, backoff: 1.5}\n", "steps[0].retry.backoff", 5, "has no unit"},
		{"max below backoff", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {attempts: 2, backoff: 1m, max_backoff: 1s}\n", "steps[0].retry.max_backoff", 5, "shorter than backoff"},
		{"retry unknown key", "name: x\nsteps:\n  - name: a\n    run: b\n    retry: {tries: 2}\n", "steps[0].retry.tries", 5, "allowed: attempts, backoff, max_backoff"},
		{"publish bad", "name: x\nsteps:\n  - name: a\n    run: b\n    publish: [ok, Bad]\n", "steps[0].publish[1]", 5, "not a valid signal name"},
		{"publish twice", "name: x\nsteps:\n  - name: a\n    run: b\n    publish: [s, s]\n", "steps[0].publish[1]", 5, "listed twice"},
		{"env reserved", "name: x\nsteps:\n  - name: a\n    run: b\n    env:\n      BATON_STEP: x\n", "steps[0].env.BATON_STEP", 6, "reserved"},
		{"env bad name", "name: x\nsteps:\n  - name: a\n    run: b\n    env:\n      OK: x\n      1X: y\n", `steps[0].env["1X"]`, 7, "not a valid environment variable name"},
		{"env null value", "name: x\nsteps:\n  - name: a\n    run: b\n    env:\n      X:\n", "steps[0].env.X", 6, `write "" for an empty value`},
		{"env list value", "name: x\nsteps:\n  - name: a\n    run: b\n    env: {X: [1]}\n", "steps[0].env.X", 5, "must be a single value"},
	})
}

func TestParseErrorsForeach(t *testing.T) {
	const head = "name: x\nsteps:\n  - name: a\n    run: b\n  - name: c\n    run: d\n"
	checkErrCases(t, []errCase{
		{"no needs", head + "  - name: e\n    foreach: items.json\n    run: f\n", "steps[2].foreach", 8, "has no needs"},
		{"absolute", head + "  - name: e\n    needs: [a]\n    foreach: /tmp/items.json\n    run: f\n", "steps[2].foreach", 9, "not a valid artifact name"},
		{"dot dot", head + "  - name: e\n    needs: [a]\n    foreach: a/../x.json\n    run: f\n", "steps[2].foreach", 9, "without . or .. parts"},
		{"empty string", head + "  - name: e\n    needs: [a]\n    foreach: ''\n    run: f\n", "steps[2].foreach", 9, "foreach is empty"},
		{"step not needed", head + "  - name: e\n    needs: [a]\n    foreach: c/items.json\n    run: f\n", "steps[2].foreach", 9, `names step "c", which step "e" does not need`},
		{"ambiguous", head + "  - name: e\n    needs: [a, c]\n    foreach: items.json\n    run: f\n", "steps[2].foreach", 9, "write it as <step>/items.json"},
		{"bad json", head + "  - name: e\n    foreach: '[1, 2'\n    run: f\n", "steps[2].foreach", 8, "not a valid JSON array"},
		{"empty list", head + "  - name: e\n    foreach: []\n    run: f\n", "steps[2].foreach", 8, "foreach is empty"},
		{"empty json", head + "  - name: e\n    foreach: '[]'\n    run: f\n", "steps[2].foreach", 8, "foreach is empty"},
		{"mapping", head + "  - name: e\n    foreach: {a: 1}\n    run: f\n", "steps[2].foreach", 8, "must be an artifact name"},
		{"null", head + "  - name: e\n    foreach:\n    run: f\n", "steps[2].foreach", 8, "has no value"},
	})
}

func TestParseErrorsCycles(t *testing.T) {
	checkErrCases(t, []errCase{
		{"three", "name: x\nsteps:\n  - name: a\n    needs: [c]\n    run: x\n  - name: b\n    needs: [a]\n    run: x\n  - name: c\n    needs: [b]\n    run: x\n",
			"steps[0].needs[0]", 4, "cycle: a -> b -> c -> a"},
		{"two", "name: x\nsteps:\n  - name: root\n    run: x\n  - name: a\n    needs: [root, b]\n    run: x\n  - name: b\n    needs: [a]\n    run: x\n",
			"steps[1].needs[1]", 6, "cycle: a -> b -> a"},
		{"behind a root", "name: x\nsteps:\n  - name: z\n    needs: [a]\n    run: x\n  - name: a\n    needs: [b]\n    run: x\n  - name: b\n    needs: [a]\n    run: x\n",
			"steps[1].needs[0]", 7, "cycle: a -> b -> a"},
	})
	// One cycle is reported once even when a need is listed twice.
	es := parseErrors(t, "name: x\nsteps:\n  - name: a\n    needs: [b, b]\n    run: x\n  - name: b\n    needs: [a]\n    run: x\n")
	n := 0
	for _, e := range es {
		if strings.Contains(e.Msg, "cycle:") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d cycle reports, want 1:\n%v", n, es)
	}
}

func TestParseErrorsTriggers(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"none", "name: x\ntriggers:\n  - when: 'true'\n" + steps, "triggers[0]", 3, "needs one of signal, signals, on_finish or cron"},
		{"two", "name: x\ntriggers:\n  - signal: s\n    cron: '@hourly'\n" + steps, "triggers[0]", 3, "exactly one of signal, signals, on_finish or cron: split it into 2 triggers"},
		{"signal and signals", "name: x\ntriggers:\n  - signal: s\n    signals: [a, b]\n    join_keys: [k]\n" + steps, "triggers[0]", 3, "split it into 2 triggers"},
		{"when without signal", "name: x\ntriggers:\n  - cron: '@hourly'\n    when: 'x'\n" + steps, "triggers[0].when", 4, "only applies to a signal or join (signals) trigger"},
		{"when on on_finish", "name: x\ntriggers:\n  - on_finish: up\n    when: 'x'\n" + steps, "triggers[0].when", 4, "only applies to a signal or join"},
		{"empty when", "name: x\ntriggers:\n  - signal: s\n    when: ''\n" + steps, "triggers[0].when", 4, "when is empty"},
		{"bad signal", "name: x\ntriggers:\n  - signal: Bad!\n" + steps, "triggers[0].signal", 3, "not a valid signal name"},
		{"bad cron", "name: x\ntriggers:\n  - cron: '0 25 * * *'\n" + steps, "triggers[0].cron", 3, "invalid schedule"},
		{"six fields", "name: x\ntriggers:\n  - cron: '0 0 0 * * *'\n" + steps, "triggers[0].cron", 3, "5 fields"},
		{"cron tz", "name: x\ntriggers:\n  - cron: 'CRON_TZ=UTC 0 2 * * *'\n" + steps, "triggers[0].cron", 3, "timezone key"},
		{"every too often", "name: x\ntriggers:\n  - cron: '@every 10ms'\n" + steps, "triggers[0].cron", 3, "the shortest interval is 1s"},
		{"cron number", "name: x\ntriggers:\n  - cron: 5\n" + steps, "triggers[0].cron", 3, "must be a string"},
		{"bad timezone", "name: x\ntriggers:\n  - cron: '@daily'\n    timezone: Mars/Olympus\n" + steps, "triggers[0].timezone", 4, "unknown time zone"},
		{"timezone without cron", "name: x\ntriggers:\n  - signal: s\n    timezone: UTC\n" + steps, "triggers[0].timezone", 4, "only applies to a cron trigger"},
		{"on_finish bad status", "name: x\ntriggers:\n  - on_finish: {flow: up, status: [done]}\n" + steps, "triggers[0].on_finish.status[0]", 3, `unknown status "done"`},
		{"on_finish empty status", "name: x\ntriggers:\n  - on_finish: {flow: up, status: []}\n" + steps, "triggers[0].on_finish.status", 3, "lists no status"},
		{"on_finish no flow", "name: x\ntriggers:\n  - on_finish: {status: [failed]}\n" + steps, "triggers[0].on_finish.flow", 3, "the flow has no name"},
		{"on_finish number", "name: x\ntriggers:\n  - on_finish: 3\n" + steps, "triggers[0].on_finish", 3, "must be a flow name or a mapping"},
		{"unknown key", "name: x\ntriggers:\n  - signal: s\n    if: x\n" + steps, "triggers[0].if", 4, "allowed: catchup, catchup_max, cron, join_keys, on_finish, params, signal, signals, timezone, when"},
		{"unknown key typo", "name: x\ntriggers:\n  - signals: [a, b]\n    join_key: [k]\n" + steps, "triggers[0].join_key", 4, `did you mean "join_keys"?`},
	})
}

func TestParseErrorsJoinTriggers(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"one signal", "name: x\ntriggers:\n  - signals: [a]\n    join_keys: [k]\n" + steps, "triggers[0].signals", 3, "a join lists 2 or more signals: for a single signal, write signal: a"},
		{"signals as a string", "name: x\ntriggers:\n  - signals: a\n    join_keys: [k]\n" + steps, "triggers[0].signals", 3, "for a single signal, write signal: a"},
		{"no signals", "name: x\ntriggers:\n  - signals: []\n    join_keys: [k]\n" + steps, "triggers[0].signals", 3, "lists no signals"},
		{"signals null", "name: x\ntriggers:\n  - signals:\n    join_keys: [k]\n" + steps, "triggers[0].signals", 3, "lists no signals"},
		{"signal twice", "name: x\ntriggers:\n  - signals: [a, b, a]\n    join_keys: [k]\n" + steps, "triggers[0].signals[2]", 3, `signal "a" is listed twice in signals`},
		{"bad signal name", "name: x\ntriggers:\n  - signals:\n      - a\n      - B!\n    join_keys: [k]\n" + steps, "triggers[0].signals[1]", 5, `"B!" is not a valid signal name`},
		{"signals not strings", "name: x\ntriggers:\n  - signals: [a, {b: 1}]\n    join_keys: [k]\n" + steps, "triggers[0].signals[1]", 3, "must be a string"},
		{"signals a mapping", "name: x\ntriggers:\n  - signals: {a: 1}\n    join_keys: [k]\n" + steps, "triggers[0].signals", 3, "must be a list of strings"},
		{"no join keys", "name: x\ntriggers:\n  - signals: [a, b]\n" + steps, "triggers[0].join_keys", 3, "a join needs join_keys"},
		{"empty join keys", "name: x\ntriggers:\n  - signals: [a, b]\n    join_keys: []\n" + steps, "triggers[0].join_keys", 4, "a join needs join_keys"},
		{"join keys without signals", "name: x\ntriggers:\n  - signal: a\n    join_keys: [date]\n" + steps, "triggers[0].join_keys", 4, "join_keys only applies to a join trigger"},
		{"bad join key", "name: x\ntriggers:\n  - signals: [a, b]\n    join_keys: [date, Region]\n" + steps, "triggers[0].join_keys[1]", 4, `"Region" is not a valid param name`},
		{"join key twice", "name: x\ntriggers:\n  - signals: [a, b]\n    join_keys: [date, date]\n" + steps, "triggers[0].join_keys[1]", 4, `join key "date" is listed twice`},
		{"join key number", "name: x\ntriggers:\n  - signals: [a, b]\n    join_keys: [1]\n" + steps, "triggers[0].join_keys[0]", 4, "must be a string"},
		{"empty when", "name: x\ntriggers:\n  - signals: [a, b]\n    join_keys: [k]\n    when: ' '\n" + steps, "triggers[0].when", 5, "when is empty"},
	})
}

// TestParseBrokenTriggerKindReportedOnce checks that a trigger whose kind
// key fails to decode is not also reported as having no kind, nor are the
// keys that depend on the kind.
func TestParseBrokenTriggerKindReportedOnce(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	for _, src := range []string{
		"name: x\ntriggers:\n  - signals:\n    join_keys: [k]\n    when: 'true'\n" + steps,
		"name: x\ntriggers:\n  - signals: one\n    join_keys: [k]\n" + steps,
		"name: x\ntriggers:\n  - signal: ''\n    when: 'true'\n" + steps,
		"name: x\nparams: {d: {}}\ntriggers:\n  - signal: 3\n    params: {d: params.d}\n" + steps,
		"name: x\ntriggers:\n  - cron: ''\n    timezone: UTC\n    catchup: all\n    catchup_max: 2\n" + steps,
	} {
		if es := parseErrors(t, src); len(es) != 1 {
			t.Errorf("got %d errors, want 1:\n%v\n--- source:\n%s", len(es), es, src)
		}
	}
}

func TestParseErrorsTriggerParams(t *testing.T) {
	const head = "name: x\nparams:\n  date: {type: string}\n  model: {default: recs}\n"
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"undeclared", head + "triggers:\n  - signal: s\n    params:\n      day: params.date\n" + steps, "triggers[0].params.day", 8, `flow "x" declares no param "day" (declared: date, model)`},
		{"undeclared typo", head + "triggers:\n  - signal: s\n    params: {dat: params.date}\n" + steps, "triggers[0].params.dat", 7, `did you mean "date"?`},
		{"no params declared", "name: x\ntriggers:\n  - signal: s\n    params: {date: params.date}\n" + steps, "triggers[0].params.date", 4, `declares no param "date": declare it under params first`},
		{"on cron", head + "triggers:\n  - cron: '@daily'\n    params: {date: '\"x\"'}\n" + steps, "triggers[0].params", 7, "params only applies to a signal, join (signals) or on_finish trigger"},
		{"empty expression", head + "triggers:\n  - signal: s\n    params: {date: ''}\n" + steps, "triggers[0].params.date", 7, "the expression is empty"},
		{"blank expression", head + "triggers:\n  - signal: s\n    params: {date: '  '}\n" + steps, "triggers[0].params.date", 7, "the expression is empty"},
		{"null expression", head + "triggers:\n  - signal: s\n    params:\n      date:\n" + steps, "triggers[0].params.date", 8, "has no value: write a CEL expression such as params.date"},
		{"number expression", head + "triggers:\n  - signal: s\n    params: {model: 3}\n" + steps, "triggers[0].params.model", 7, `quote it ("3")`},
		{"list expression", head + "triggers:\n  - signal: s\n    params: {model: [a]}\n" + steps, "triggers[0].params.model", 7, "must be a string, not a list"},
		{"params a list", head + "triggers:\n  - signal: s\n    params: [date]\n" + steps, "triggers[0].params", 7, "must be a mapping of run params to CEL expressions"},
		{"join undeclared", head + "triggers:\n  - signals: [a, b]\n    join_keys: [date]\n    params: {region: params.region}\n" + steps, "triggers[0].params.region", 8, `declares no param "region"`},
		{"on_finish undeclared", head + "triggers:\n  - on_finish: up\n    params: {region: params.region}\n" + steps, "triggers[0].params.region", 7, `declares no param "region"`},
	})
}

func TestParseErrorsCatchup(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"unknown", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: some\n" + steps, "triggers[0].catchup", 4, `unknown catchup "some" (catchup is one of: none, last, all`},
		{"empty", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: ''\n" + steps, "triggers[0].catchup", 4, `unknown catchup ""`},
		{"bool", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: true\n" + steps, "triggers[0].catchup", 4, "must be a string"},
		{"without cron", "name: x\ntriggers:\n  - signal: s\n    catchup: all\n" + steps, "triggers[0].catchup", 4, "catchup only applies to a cron trigger"},
		{"max without all", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: last\n    catchup_max: 5\n" + steps, "triggers[0].catchup_max", 5, "catchup_max only applies with catchup: all"},
		{"max without catchup", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup_max: 5\n" + steps, "triggers[0].catchup_max", 4, "catchup_max only applies with catchup: all"},
		{"max zero", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: all\n    catchup_max: 0\n" + steps, "triggers[0].catchup_max", 5, "between 1 and 1000"},
		{"max too many", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: all\n    catchup_max: 1001\n" + steps, "triggers[0].catchup_max", 5, "catchup_max is 1001: it must be between 1 and 1000"},
		{"max negative", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: all\n    catchup_max: -1\n" + steps, "triggers[0].catchup_max", 5, "between 1 and 1000"},
		{"max quoted", "name: x\ntriggers:\n  - cron: '@daily'\n    catchup: all\n    catchup_max: '5'\n" + steps, "triggers[0].catchup_max", 5, "write 5 without quotes"},
	})
}

func TestParseErrorsWait(t *testing.T) {
	const head = "name: x\nsteps:\n  - name: a\n    run: b\n"
	checkErrCases(t, []errCase{
		{"no signal", head + "    wait: {timeout: 1h}\n", "steps[0].wait.signal", 5, "wait names no signal"},
		{"empty mapping", head + "    wait: {}\n", "steps[0].wait.signal", 5, "wait names no signal"},
		{"bad signal", head + "    wait:\n      signal: Canary\n", "steps[0].wait.signal", 6, `"Canary" is not a valid signal name`},
		{"bad shorthand", head + "    wait: Canary\n", "steps[0].wait.signal", 5, `"Canary" is not a valid signal name`},
		{"signal number", head + "    wait: {signal: 3}\n", "steps[0].wait.signal", 5, `put it in quotes ("3")`},
		{"null", head + "    wait:\n", "steps[0].wait", 5, "must be a signal name or a mapping"},
		{"number", head + "    wait: 3\n", "steps[0].wait", 5, "must be a signal name or a mapping"},
		{"list", head + "    wait: [a]\n", "steps[0].wait", 5, "must be a mapping with keys signal, timeout, when"},
		{"unknown key", head + "    wait: {signal: s, until: x}\n", "steps[0].wait.until", 5, "unknown key \"until\" (allowed: signal, timeout, when)"},
		{"empty when", head + "    wait: {signal: s, when: ''}\n", "steps[0].wait.when", 5, "when is empty"},
		{"blank when", head + "    wait:\n      signal: s\n      when: '  '\n", "steps[0].wait.when", 7, "when is empty"},
		{"timeout zero", head + "    wait: {signal: s, timeout: 0s}\n", "steps[0].wait.timeout", 5, "must be more than 0"},
		{"timeout negative", head + "    wait: {signal: s, timeout: -1m}\n", "steps[0].wait.timeout", 5, "must be more than 0"},
		{"timeout bare", head + "    wait: {signal: s, timeout: 60}\n", "steps[0].wait.timeout", 5, `write a duration such as "60s"`},
		{"timeout word", head + "    wait: {signal: s, timeout: later}\n", "steps[0].wait.timeout", 5, "is not a duration"},
	})
}

func TestParseErrorsConcurrencyAndSignals(t *testing.T) {
	const steps = "steps: [{name: a, run: b}]\n"
	checkErrCases(t, []errCase{
		{"max_runs zero", "name: x\nconcurrency: {max_runs: 0}\n" + steps, "concurrency.max_runs", 2, "at least 1"},
		{"max_runs negative", "name: x\nconcurrency:\n  max_runs: -1\n" + steps, "concurrency.max_runs", 3, "at least 1"},
		{"strategy", "name: x\nconcurrency: {strategy: lifo}\n" + steps, "concurrency.strategy", 2, `unknown strategy "lifo" (strategies are: sequential, parallel, first_only, last_only, strict_sequential)`},
		{"signal bad name", "name: x\n" + steps + "signals:\n  - name: Bad\n", "signals[0].name", 4, "not a valid signal name"},
		{"signal twice", "name: x\n" + steps + "signals:\n  - name: s\n  - name: s\n", "signals[1].name", 5, "declared twice"},
		{"signal param type", "name: x\n" + steps + "signals:\n  - name: s\n    params:\n      p: {type: time}\n", "signals[0].params.p.type", 6, "unknown type"},
		{"signal param shorthand", "name: x\n" + steps + "signals:\n  - name: s\n    params:\n      p: int\n", "signals[0].params.p", 6, "write p: {type: int}"},
		{"signal param required", "name: x\n" + steps + "signals:\n  - name: s\n    params:\n      p: {required: yes}\n", "signals[0].params.p.required", 6, "must be true or false"},
		{"signal param name", "name: x\n" + steps + "signals:\n  - name: s\n    params:\n      P-1: {}\n", "signals[0].params.P-1", 6, "not a valid param name"},
	})
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := "name: X\nsteps:\n  - name: a\n    needs: [nope]\n    run: b\n    timeout: 5\n  - name: a\n    run: c\n"
	es := parseErrors(t, src)
	want := []string{
		"flow.yaml:1:7: name: ",
		"flow.yaml:4:13: steps[0].needs[0]: unknown step \"nope\"",
		"flow.yaml:6:14: steps[0].timeout: 5 has no unit",
		"flow.yaml:7:11: steps[1].name: step \"a\" is defined twice",
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), es)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, es[i], w)
		}
	}
	if got := strings.Count(es.Error(), "\n"); got != len(want)-1 {
		t.Errorf("Errors.Error() has %d newlines, want %d", got, len(want)-1)
	}
}

func TestParseCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: x\nsteps:\n")
	for range 40 {
		b.WriteString("  - {name: a, run: b, needs: [zz]}\n")
	}
	es := parseErrors(t, b.String())
	if len(es) != maxErrors+1 || !strings.Contains(es[maxErrors].Msg, "too many problems") {
		t.Errorf("got %d errors, the last %q; want %d and a note", len(es), es[len(es)-1], maxErrors+1)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Nine levels of ten aliases expand to 10^9 values.
	var b strings.Builder
	b.WriteString("name: bomb\nx-0: &l0 [a, a, a, a, a, a, a, a, a, a]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("x-" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("params:\n  p: {type: json, default: *l9}\nsteps: [{name: a, run: b}]\n")
	checkErrCases(t, []errCase{{"bomb", b.String(), "params.p.default", 13, "too large"}})
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.yaml")
	if err := os.WriteFile(p, []byte("name: f\nsteps: [{name: a, run: b, needs: [zz]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":2:") {
		t.Errorf("ParseFile error = %v, want it to start with %s:2:", err, p)
	}
	_, err = ParseFile(filepath.Join(dir, "missing.yaml"))
	var es Errors
	if !errors.As(err, &es) || !strings.Contains(err.Error(), "cannot read the flow file") {
		t.Errorf("ParseFile of a missing file = %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Column: 5, Field: "steps[1]", Msg: "m"}, "f.yaml:3:5: steps[1]: m"},
		{Error{File: "f.yaml", Line: 3, Msg: "m"}, "f.yaml:3: m"},
		{Error{Field: "name", Msg: "m"}, "name: m"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	var target *Error
	if !errors.As(error(Errors{{Msg: "x"}}), &target) || target.Msg != "x" {
		t.Errorf("errors.As cannot find an *Error in Errors")
	}
}

// signalsFlowSrc uses every trigger and step feature that works with
// signals.
const signalsFlowSrc = `
name: train-recs
params:
  date: {type: string, default: today}
  model: {default: recs}
  min_score: {type: float, default: 0.9}
triggers:
  - signal: data_landed
    when: 'params.table == "events"'
    params:
      date: params.date
  - signals: [features_ready, labels_ready]
    join_keys: [date]
    when: 'params.date >= "2024-01-01"'
    params:
      date: params.date
      model: '"recs-" + params.feature_version'
  - on_finish: {flow: ingest}
    params: {date: params.date}
  - cron: "0 2 * * *"
    timezone: UTC
    catchup: all
    catchup_max: 3
  - cron: "@hourly"
    catchup: none
steps:
  - name: train
    run: ./train.sh
    publish: [model_trained]
  - name: promote
    needs: [train]
    wait:
      signal: canary_passed
      when: 'params.model == "recs" && params.score >= 0.9'
      timeout: 6h
    run: ./promote.sh
  - name: report
    needs: [train]
    foreach: [a, b]
    wait: experiment_paused
    run: ./report.sh
signals:
  - name: labels_ready
    params:
      date: {type: string, required: true}
`

func TestParseSignalFeatures(t *testing.T) {
	got := mustParse(t, signalsFlowSrc)
	want := []Trigger{
		{Signal: "data_landed", When: `params.table == "events"`, Params: map[string]string{"date": "params.date"}},
		{Signals: []string{"features_ready", "labels_ready"}, JoinKeys: []string{"date"}, When: `params.date >= "2024-01-01"`,
			Params: map[string]string{"date": "params.date", "model": `"recs-" + params.feature_version`}},
		{OnFinish: &OnFinish{Flow: "ingest", Status: []string{"succeeded"}}, Params: map[string]string{"date": "params.date"}},
		{Cron: "0 2 * * *", Timezone: "UTC", Catchup: CatchupAll, CatchupMax: 3},
		{Cron: "@hourly", Catchup: CatchupNone},
	}
	if !reflect.DeepEqual(got.Triggers, want) {
		g, _ := json.MarshalIndent(got.Triggers, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("triggers:\n%s\nwant:\n%s", g, w)
	}
	for i, kind := range []string{"signal", "join", "on_finish", "cron", "cron"} {
		if k := got.Triggers[i].Kind(); k != kind {
			t.Errorf("triggers[%d].Kind() = %q, want %q", i, k, kind)
		}
	}
	if w := got.Step("promote").Wait; !reflect.DeepEqual(w, &Wait{Signal: "canary_passed", When: `params.model == "recs" && params.score >= 0.9`, Timeout: Duration(6 * time.Hour)}) {
		t.Errorf("promote wait = %+v", w)
	}
	if w := got.Step("report").Wait; !reflect.DeepEqual(w, &Wait{Signal: "experiment_paused"}) {
		t.Errorf("report wait (shorthand) = %+v", w)
	}
	if got.Step("train").Wait != nil || got.ContractsOnly() {
		t.Errorf("train has a wait, or the flow is contracts-only")
	}

	// The stored form: the JSON keys the engine reads, and a round trip.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"signals":["features_ready","labels_ready"]`, `"join_keys":["date"]`, `"catchup":"all"`, `"catchup_max":3`,
		`"wait":{"signal":"canary_passed","when":"params.model == \"recs\" \u0026\u0026 params.score \u003e= 0.9","timeout":"6h0m0s"}`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s:\n%s", key, b)
		}
	}
	var back Flow
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != got.Digest() || back.Validate() != nil {
		t.Errorf("the flow changed through JSON: %s", b)
	}
	// Changing a new field changes the digest.
	changed := mustParse(t, strings.Replace(signalsFlowSrc, "catchup_max: 3", "catchup_max: 4", 1))
	if changed.Digest() == got.Digest() {
		t.Errorf("catchup_max does not reach the digest")
	}
}

func TestParseContractsOnly(t *testing.T) {
	src := `
# signals.yaml
description: shared contracts
x-date: &date {type: string, required: true}
signals:
  - name: data_landed
    params:
      table: {type: string, required: true}
      date: *date
      rows: {type: int}
  - name: ping
`
	f := mustParse(t, src)
	if !f.ContractsOnly() {
		t.Fatalf("ContractsOnly() = false for %+v", f)
	}
	want := []Signal{
		{Name: "data_landed", Params: []SignalParam{{Name: "table", Type: String, Required: true}, {Name: "date", Type: String, Required: true}, {Name: "rows", Type: Int}}},
		{Name: "ping"},
	}
	if !reflect.DeepEqual(f.Signals, want) || f.Description != "shared contracts" {
		t.Errorf("contracts = %+v, want %+v", f.Signals, want)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("Validate of a contracts-only document: %v", err)
	}

	const contracts = "signals:\n  - name: s\n"
	checkErrCases(t, []errCase{
		// Only the contracts' rules apply ...
		{"bad contract", "signals:\n  - name: Bad\n", "signals[0].name", 2, "not a valid signal name"},
		{"contract twice", "signals:\n  - name: s\n  - name: s\n", "signals[1].name", 3, "declared twice"},
		{"contract param type", "signals:\n  - name: s\n    params: {p: {type: time}}\n", "signals[0].params.p.type", 3, "unknown type"},
		{"contract not a mapping", "signals: [s]\n", "signals[0]", 1, "must be a mapping"},
		// ... unless other flow keys make the document a flow.
		{"empty signals", "signals: []\n", "name", 1, "the flow has no name"},
		{"empty signals no steps", "signals: []\n", "steps", 1, "the flow has no steps"},
		{"null signals", "signals:\n", "name", 1, "the flow has no name"},
		{"with params", "params: {a: {}}\n" + contracts, "name", 1, "the flow has no name"},
		{"with triggers", "triggers: [{signal: s}]\n" + contracts, "steps", 1, "the flow has no steps"},
		{"with concurrency", "concurrency: {max_runs: 1}\n" + contracts, "name", 1, "the flow has no name"},
		{"with empty steps", "steps: []\n" + contracts, "steps", 1, "the flow has no steps"},
		{"with empty name", "name: ''\n" + contracts, "name", 1, "the flow has no name"},
		{"with name", "name: x\n" + contracts, "steps", 1, "the flow has no steps"},
		{"with steps", "steps: [{name: a, run: b}]\n" + contracts, "name", 1, "the flow has no name"},
		{"unknown key", "owner: me\n" + contracts, "owner", 1, "unknown key"},
	})
	// A contracts-only document is not asked for a name or steps.
	for _, e := range parseErrors(t, "signals:\n  - name: Bad\n") {
		if e.Field == "name" || e.Field == "steps" {
			t.Errorf("contracts-only document: %v", e)
		}
	}
}

func TestParseChecks(t *testing.T) {
	var seen *Flow
	noWhen := func(f *Flow) Errors {
		seen = f
		var es Errors
		for i, tr := range f.Triggers {
			if tr.When != "" {
				es = append(es, &Error{Field: indexPath("triggers", i) + ".when", Msg: "CEL: undeclared reference to 'region'"})
			}
		}
		return es
	}
	src := "name: x\ntriggers:\n  - signal: s\n  - signal: t\n    when:   'region == 1'\nsteps: [{name: a, run: b}]\n"
	_, err := Parse("flow.yaml", []byte(src), nil, noWhen)
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("Parse with a check = %v, want one error", err)
	}
	if e := es[0]; e.File != "flow.yaml" || e.Line != 5 || e.Column != 13 || e.Field != "triggers[1].when" || !strings.Contains(e.Msg, "undeclared reference") {
		t.Errorf("check error = %#v", *e)
	}
	if got := es[0].Error(); got != "flow.yaml:5:13: triggers[1].when: CEL: undeclared reference to 'region'" {
		t.Errorf("Error() = %q", got)
	}
	if seen == nil || seen.Name != "x" {
		t.Errorf("the check saw %+v", seen)
	}

	// A field the file does not write takes its nearest enclosing field's
	// position; an unknown path the file's start.
	outer := func(f *Flow) Errors {
		return Errors{{Field: "triggers[0].params.date", Msg: "m1"}, {Field: "nowhere[3]", Msg: "m2"}}
	}
	_, err = Parse("flow.yaml", []byte(src), outer)
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 1 || es[1].Line != 3 || es[1].Column != 5 {
		t.Errorf("positions of check errors: %v", err)
	}

	// Checks run only on a flow the built-in rules accept.
	seen = nil
	if _, err := Parse("flow.yaml", []byte("name: X\n"+src[len("name: x\n"):]), noWhen); err == nil || seen != nil {
		t.Errorf("a check ran on a flow with problems: %v", err)
	}
	// A check that finds nothing, and checks on contracts-only documents.
	pass := func(f *Flow) Errors { return nil }
	if _, err := Parse("flow.yaml", []byte(src), pass); err != nil {
		t.Errorf("passing check: %v", err)
	}
	contractsCheck := func(f *Flow) Errors {
		if !f.ContractsOnly() {
			return Errors{{Field: "", Msg: "want contracts"}}
		}
		return Errors{{Field: "signals[0].params.rows.type", Msg: "rows was a float in the registered contract"}}
	}
	_, err = Parse("signals.yaml", []byte("signals:\n  - name: s\n    params:\n      rows: {type: int}\n"), contractsCheck)
	if !errors.As(err, &es) || len(es) != 1 || es[0].Line != 4 || es[0].Column != 20 {
		t.Errorf("contracts check: %v", err)
	}

	// ParseFile passes checks on.
	p := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(p, noWhen); err == nil || !strings.HasPrefix(err.Error(), p+":5:13: triggers[1].when:") {
		t.Errorf("ParseFile with a check = %v", err)
	}
}
