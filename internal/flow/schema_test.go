package flow

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/baton-ml/baton/schema"
)

// specDir holds the shared contract's smoke flows; tests skip them when the
// folder is not there.
const specDir = "../../../shared/spec/smoke"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.Flow))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("flow.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("flow.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// yamlInstance turns YAML into the JSON value the schema sees, with anchors
// and merge keys resolved as an editor's YAML server would.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var errs errorList
	root := parseYAML(src, &errs)
	if root == nil || len(errs) > 0 {
		t.Fatalf("YAML: %v", errs.result(""))
	}
	budget := jsonBudget
	x, err := toGo(root, &budget)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := canonicalJSON(x)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// flowFiles lists the example flows and the spec's valid smoke flow.
func flowFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Feature, endpoint and experiment files are not flows.
	var files []string
	for _, p := range all {
		if b, err := os.ReadFile(p); err == nil && !regexp.MustCompile(`(?m)^(entities|sources|features|endpoints|experiments|monitors):`).Match(b) {
			files = append(files, p)
		}
	}
	if len(files) < 3 {
		t.Fatalf("found %d example flows, want at least 3", len(files))
	}
	if p := filepath.Join(specDir, "pipeline.yaml"); fileExists(p) {
		files = append(files, p)
	}
	return files
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestSchemaAcceptsExamples(t *testing.T) {
	sch := compileSchema(t)
	for _, p := range flowFiles(t) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(p, src)
			if err != nil {
				t.Errorf("Parse: %v", err)
			}
			if err := sch.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("schema: %v", err)
			}
			if filepath.Base(p) == "signals.yaml" && f != nil && !f.ContractsOnly() {
				t.Errorf("%s is not contracts-only", p)
			}
		})
	}
}

func TestSignalsExample(t *testing.T) {
	f, err := ParseFile("../../examples/signals/signals.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !f.ContractsOnly() {
		t.Fatalf("ContractsOnly() = false")
	}
	// The contracts the spec names, as the engine sees them.
	type p = SignalParam
	want := map[string][]SignalParam{
		"data_landed":       {{"table", String, true}, {"date", String, true}, {"rows", Int, false}},
		"features_ready":    {{"feature_version", String, true}, {"date", String, true}, {"row_count", Int, true}, {"quality", JSON, false}},
		"model_trained":     {{"model", String, true}, {"version", String, true}, {"run_id", Int, false}, {"metrics", JSON, false}},
		"canary_passed":     {{"model", String, true}, {"version", String, true}, {"score", Float, true}},
		"canary_failed":     {{"model", String, true}, {"version", String, true}, {"score", Float, true}, {"reason", String, false}},
		"feature_stale":     {{"feature", String, true}, {"staleness_seconds", Float, false}},
		"experiment_paused": {{"experiment", String, true}, {"reason", String, false}},
	}
	if len(f.Signals) != len(want) {
		t.Errorf("%d contracts, want %d", len(f.Signals), len(want))
	}
	for _, sg := range f.Signals {
		if w, ok := want[sg.Name]; !ok || !reflect.DeepEqual(sg.Params, w) {
			t.Errorf("contract %s = %+v, want %+v", sg.Name, sg.Params, w)
		}
		if sg.Description == "" {
			t.Errorf("contract %s has no description", sg.Name)
		}
	}
}

func TestSchemaAcceptsWhatParseAccepts(t *testing.T) {
	sch := compileSchema(t)
	src := `
name: every-key
description: uses every key
x-retry: &retry {attempts: 2, backoff: 1s, max_backoff: 10s}
params:
  s: {default: x, description: d}
  n: {type: int, default: 3}
  f: {type: float, default: 1}
  b: {type: bool, default: false}
  j: {type: json, default: [1, {a: b}]}
  r: {type: string}
triggers:
  - signal: go
    when: 'params.n > 1'
  - on_finish: up
  - on_finish: {flow: up, status: [succeeded, failed]}
  - on_finish: {flow: up, status: failed}
  - cron: "*/5 * * * *"
    timezone: Europe/Paris
concurrency: {max_runs: 2, strategy: last_only}
steps:
  - name: a
    run: "true"
    retry: *retry
    timeout: 1h30m
    env: {A: x, N: 3, B: true}
    publish: go
  - name: b
    needs: a
    foreach: a/items.json
    run: "true"
    publish: [go, stop]
  - name: c
    needs: [a, b]
    foreach: [1, x]
    run: "true"
  - name: d
    foreach: '[1, 2]'
    run: "true"
signals:
  - name: go
    description: d
    params: {n: {type: int, required: true}, m: {}}
`
	for _, src := range []string{src, signalsFlowSrc, contractsSrc} {
		if _, err := Parse("f.yaml", []byte(src)); err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if err := sch.Validate(yamlInstance(t, []byte(src))); err != nil {
			t.Errorf("schema: %v\n--- source:\n%s", err, src)
		}
	}
}

// contractsSrc is a contracts-only document with every key it may hold.
const contractsSrc = `
description: contracts
x-req: &req {type: string, required: true}
signals:
  - name: a
    description: d
    params: {k: *req, n: {type: int}, j: {type: json, required: false}}
  - name: b
`

func TestSchemaRejectsWhatParseRejects(t *testing.T) {
	sch := compileSchema(t)
	const ok = "steps: [{name: a, run: b}]\n"
	for _, tc := range []struct{ name, src string }{
		{"unknown key", "name: x\nowner: me\n" + ok},
		{"no name", ok},
		{"bad name", "name: X\n" + ok},
		{"no steps", "name: x\nsteps: []\n"},
		{"no run", "name: x\nsteps: [{name: a}]\n"},
		{"empty run", "name: x\nsteps: [{name: a, run: ' '}]\n"},
		{"bad step name", "name: x\nsteps: [{name: A, run: b}]\n"},
		{"unknown step key", "name: x\nsteps: [{name: a, run: b, image: x}]\n"},
		{"attempts zero", "name: x\nsteps: [{name: a, run: b, retry: {attempts: 0}}]\n"},
		{"attempts too many", "name: x\nsteps: [{name: a, run: b, retry: {attempts: 101}}]\n"},
		{"bare timeout", "name: x\nsteps: [{name: a, run: b, timeout: 30}]\n"},
		{"word timeout", "name: x\nsteps: [{name: a, run: b, timeout: soon}]\n"},
		{"env reserved", "name: x\nsteps: [{name: a, run: b, env: {BATON_X: y}}]\n"},
		{"env bad name", "name: x\nsteps: [{name: a, run: b, env: {1X: y}}]\n"},
		{"foreach empty list", "name: x\nsteps: [{name: a, run: b, foreach: []}]\n"},
		{"param scalar", "name: x\nparams: {m: US}\n" + ok},
		{"param name", "name: x\nparams: {M: {default: US}}\n" + ok},
		{"param type", "name: x\nparams: {m: {type: integer}}\n" + ok},
		{"int default quoted", "name: x\nparams: {m: {type: int, default: '3'}}\n" + ok},
		{"bool default", "name: x\nparams: {m: {type: bool, default: 1}}\n" + ok},
		{"string default list", "name: x\nparams: {m: {default: [1]}}\n" + ok},
		{"two trigger kinds", "name: x\ntriggers: [{signal: s, cron: '@daily'}]\n" + ok},
		{"no trigger kind", "name: x\ntriggers: [{when: 'true'}]\n" + ok},
		{"when without signal", "name: x\ntriggers: [{cron: '@daily', when: x}]\n" + ok},
		{"timezone without cron", "name: x\ntriggers: [{signal: s, timezone: UTC}]\n" + ok},
		{"bad status", "name: x\ntriggers: [{on_finish: {flow: up, status: [done]}}]\n" + ok},
		{"no status", "name: x\ntriggers: [{on_finish: {flow: up, status: []}}]\n" + ok},
		{"max_runs", "name: x\nconcurrency: {max_runs: 0}\n" + ok},
		{"strategy", "name: x\nconcurrency: {strategy: lifo}\n" + ok},
		{"signal key", "name: x\n" + ok + "signals: [{name: s, owner: me}]\n"},
		{"signal param", "name: x\n" + ok + "signals: [{name: s, params: {p: {type: int, default: 1}}}]\n"},
		{"publish bad", "name: x\nsteps: [{name: a, run: b, publish: [Bad]}]\n"},
		// Joins.
		{"signal and signals", "name: x\ntriggers: [{signal: s, signals: [a, b], join_keys: [k]}]\n" + ok},
		{"one signal joined", "name: x\ntriggers: [{signals: [a], join_keys: [k]}]\n" + ok},
		{"signals as a string", "name: x\ntriggers: [{signals: a, join_keys: [k]}]\n" + ok},
		{"signal joined twice", "name: x\ntriggers: [{signals: [a, a], join_keys: [k]}]\n" + ok},
		{"bad joined signal", "name: x\ntriggers: [{signals: [a, B], join_keys: [k]}]\n" + ok},
		{"join without keys", "name: x\ntriggers: [{signals: [a, b]}]\n" + ok},
		{"join empty keys", "name: x\ntriggers: [{signals: [a, b], join_keys: []}]\n" + ok},
		{"join keys without join", "name: x\ntriggers: [{signal: a, join_keys: [k]}]\n" + ok},
		{"bad join key", "name: x\ntriggers: [{signals: [a, b], join_keys: [K]}]\n" + ok},
		{"join key twice", "name: x\ntriggers: [{signals: [a, b], join_keys: [k, k]}]\n" + ok},
		// when and params.
		{"when on on_finish", "name: x\ntriggers: [{on_finish: up, when: x}]\n" + ok},
		{"blank when", "name: x\ntriggers: [{signal: s, when: ' '}]\n" + ok},
		{"params on cron", "name: x\nparams: {d: {}}\ntriggers: [{cron: '@daily', params: {d: '1'}}]\n" + ok},
		{"params empty expression", "name: x\nparams: {d: {}}\ntriggers: [{signal: s, params: {d: ''}}]\n" + ok},
		{"params number", "name: x\nparams: {d: {}}\ntriggers: [{signal: s, params: {d: 1}}]\n" + ok},
		{"params bad name", "name: x\nparams: {d: {}}\ntriggers: [{signal: s, params: {D: x}}]\n" + ok},
		// catchup.
		{"catchup unknown", "name: x\ntriggers: [{cron: '@daily', catchup: some}]\n" + ok},
		{"catchup without cron", "name: x\ntriggers: [{signal: s, catchup: all}]\n" + ok},
		{"catchup_max without all", "name: x\ntriggers: [{cron: '@daily', catchup: last, catchup_max: 2}]\n" + ok},
		{"catchup_max alone", "name: x\ntriggers: [{cron: '@daily', catchup_max: 2}]\n" + ok},
		{"catchup_max zero", "name: x\ntriggers: [{cron: '@daily', catchup: all, catchup_max: 0}]\n" + ok},
		{"catchup_max too many", "name: x\ntriggers: [{cron: '@daily', catchup: all, catchup_max: 1001}]\n" + ok},
		// wait.
		{"wait no signal", "name: x\nsteps: [{name: a, run: b, wait: {timeout: 1h}}]\n"},
		{"wait bad signal", "name: x\nsteps: [{name: a, run: b, wait: {signal: B}}]\n"},
		{"wait bad shorthand", "name: x\nsteps: [{name: a, run: b, wait: B}]\n"},
		{"wait unknown key", "name: x\nsteps: [{name: a, run: b, wait: {signal: s, until: x}}]\n"},
		{"wait empty when", "name: x\nsteps: [{name: a, run: b, wait: {signal: s, when: ''}}]\n"},
		{"wait bare timeout", "name: x\nsteps: [{name: a, run: b, wait: {signal: s, timeout: 60}}]\n"},
		{"wait null", "name: x\nsteps: [{name: a, run: b, wait: }]\n"},
		// Contracts-only documents.
		{"empty contracts", "signals: []\n"},
		{"null contracts", "signals:\n"},
		{"contracts and params", "params: {a: {}}\nsignals: [{name: s}]\n"},
		{"contracts and triggers", "triggers: [{signal: s}]\nsignals: [{name: s}]\n"},
		{"contracts and concurrency", "concurrency: {max_runs: 1}\nsignals: [{name: s}]\n"},
		{"contracts and name", "name: x\nsignals: [{name: s}]\n"},
		{"contracts and steps", ok + "signals: [{name: s}]\n"},
		{"contracts and empty steps", "steps: []\nsignals: [{name: s}]\n"},
		{"bad contract", "signals: [{name: S}]\n"},
		{"contract unknown key", "signals: [{name: s, owner: me}]\n"},
		{"contracts and unknown key", "owner: me\nsignals: [{name: s}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("f.yaml", []byte(tc.src)); err == nil {
				t.Errorf("Parse accepted it")
			}
			if err := sch.Validate(yamlInstance(t, []byte(tc.src))); err == nil {
				t.Errorf("the schema accepted it")
			}
		})
	}
}

func TestSchemaDescribesEveryProperty(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.Flow))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for name, p := range props {
					pm, _ := p.(map[string]any)
					if d, _ := pm["description"].(string); strings.TrimSpace(d) == "" {
						t.Errorf("%s.properties.%s has no description", path, name)
					}
				}
			}
			for k, x := range v {
				// if/then only add conditional constraints to properties
				// described elsewhere.
				if k != "if" && k != "then" {
					walk(x, path+"."+k)
				}
			}
		case []any:
			for _, x := range v {
				walk(x, path+"[]")
			}
		}
	}
	walk(doc, "$")
}
