package flow

import (
	"bytes"
	"os"
	"path/filepath"
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
	files, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
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
			if _, err := Parse(p, src); err != nil {
				t.Errorf("Parse: %v", err)
			}
			if err := sch.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("schema: %v", err)
			}
		})
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
	if _, err := Parse("f.yaml", []byte(src)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := sch.Validate(yamlInstance(t, []byte(src))); err != nil {
		t.Errorf("schema: %v", err)
	}
}

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
