package flow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are snippets that reach the parser's corners: anchors, merges,
// tags, blocks, odd scalars and broken documents.
var fuzzSeeds = []string{
	"",
	"name: x\n",
	"name: x\nsteps: [{name: a, run: b}]\n",
	"name: x\nsteps:\n  - name: a\n    needs: [c]\n    run: x\n  - name: b\n    needs: [a]\n    run: x\n  - name: c\n    needs: [b]\n    run: x\n",
	"name: x\nx-d: &d {run: b, retry: {attempts: 2, backoff: 1s}}\nsteps:\n  - {<<: *d, name: a}\n  - {<<: [*d], name: b, needs: a, foreach: [1, {k: v}]}\n",
	"name: x\nparams: {j: {type: json, default: &j [1, *j]}}\nsteps: [{name: a, run: b}]\n",
	"name: !!str x\nsteps: !!seq [{name: a, run: !!str 1, timeout: !!str 1s}]\n",
	"name: x\nparams: {a: {type: float, default: .nan}, b: {type: int, default: 0x7fffffffffffffff}, c: {type: float, default: 1e999}}\nsteps: [{name: a, run: b}]\n",
	"name: x\nsteps:\n  - name: a\n    run: |\n      echo a\n    foreach: '[1, \"a\", {\"b\": [null]}]'\n",
	"name: x\ntriggers:\n  - cron: '@every 1m'\n    timezone: UTC\n  - on_finish: {flow: y, status: failed}\n  - signal: s\n    when: 'true'\nconcurrency: {max_runs: 2, strategy: first_only}\nsteps: [{name: a, run: b, publish: s, env: {A: 1}}]\nsignals: [{name: s, params: {p: {type: int, required: true}}}]\n",
	"name: x\nsteps: [{name: a, run: b}]\n---\nname: y\n",
	"{name: x, steps: [{name: a, run: b, needs: [a, a, z]}]}",
	"name: x\nsteps:\n\t- a\n",
	"name: x\nsteps: [a, b\n",
	"? [a]\n: b\n",
	"&a a: *a\n",
	"name: x\nsteps: [{name: a, run: b, foreach: a/../b}]\n",
	"name: x\nparams: {date: {}, m: {default: r}}\ntriggers:\n  - signals: [a, b]\n    join_keys: [date]\n    when: 'params.date != \"\"'\n    params: {date: params.date, m: '\"x\"'}\n  - signal: a\n    params: {m: params.m}\n  - on_finish: {flow: up}\n    params: {date: params.date}\nsteps: [{name: a, run: b}]\n",
	"name: x\ntriggers:\n  - cron: '@daily'\n    catchup: all\n    catchup_max: 1000\n  - cron: '0 2 * * *'\n    timezone: UTC\n    catchup: none\nsteps: [{name: a, run: b}]\n",
	"name: x\ntriggers: [{signals: [a], join_keys: [], catchup_max: 0, params: {z: ''}}]\nsteps: [{name: a, run: b}]\n",
	"name: x\nsteps:\n  - name: a\n    run: b\n    wait: {signal: s, when: 'params.ok', timeout: 1h}\n  - {name: c, needs: a, foreach: [1], wait: s, run: d}\n  - {name: e, run: f, wait: {timeout: 0s, when: ''}}\n",
	"description: contracts\nx-r: &r {type: string, required: true}\nsignals:\n  - name: s\n    params: {a: *r, b: {type: json}}\n  - {name: t}\n",
	"signals: []\n",
	"steps: []\nsignals: [{name: s}]\n",
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/*/*.yaml")
	specFiles, _ := filepath.Glob(filepath.Join(specDir, "*.yaml"))
	for _, p := range append(files, specFiles...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := Parse("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Parse error is not a non-empty Errors: %#v", err)
			}
			for i, e := range es {
				note := i == maxErrors // the "too many problems" line
				if e.Msg == "" || (!note && e.Line <= 0) {
					t.Fatalf("error without a message or a line: %#v", e)
				}
			}
			return
		}
		if fl == nil {
			t.Fatal("Parse returned neither a flow nor an error")
		}
		if err := fl.Validate(); err != nil {
			t.Fatalf("Parse accepted a flow that Validate refuses: %v", err)
		}
		checkTopoOrder(t, fl)

		again, err := Parse("fuzz.yaml", data)
		if err != nil || again.Digest() != fl.Digest() {
			t.Fatalf("parsing the same bytes twice: %v, digests %s and %s", err, fl.Digest(), again.Digest())
		}

		// The store keeps the flow as JSON: it must come back the same.
		b, err := json.Marshal(fl)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Flow
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("flow read back from JSON fails Validate: %v\n%s", err, b)
		}
		if back.Digest() != fl.Digest() {
			t.Fatalf("digest changed through JSON:\n%s", b)
		}
	})
}

// checkTopoOrder checks that TopoOrder holds every step once, each after the
// steps it needs.
func checkTopoOrder(t *testing.T, fl *Flow) {
	t.Helper()
	order := fl.TopoOrder()
	if len(order) != len(fl.Steps) {
		t.Fatalf("TopoOrder has %d steps, the flow %d", len(order), len(fl.Steps))
	}
	at := map[string]int{}
	for i, s := range order {
		if _, dup := at[s.Name]; dup {
			t.Fatalf("TopoOrder holds %q twice", s.Name)
		}
		at[s.Name] = i
	}
	for _, s := range order {
		for _, n := range s.Needs {
			if at[n] >= at[s.Name] {
				t.Fatalf("TopoOrder puts %q before %q, which it needs", s.Name, n)
			}
		}
	}
}
