package flow

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// validFlow is a small flow that passes Validate, for tests to break.
func validFlow() *Flow {
	return &Flow{
		Name:   "sdk-flow",
		Params: []Param{{Name: "n", Type: Int, Default: json.RawMessage(`3`)}},
		Steps: []Step{
			{Name: "start"},
			{Name: "each", Needs: []string{"start"}, Foreach: &Foreach{Artifact: "items.json"}},
			{Name: "join", Needs: []string{"each"}, Retry: Retry{Attempts: 2, Backoff: Duration(time.Second)}},
		},
		Signals: []Signal{{Name: "done", Params: []SignalParam{{Name: "n", Type: Int, Required: true}}}},
	}
}

func TestValidateAcceptsValidFlow(t *testing.T) {
	if err := validFlow().Validate(); err != nil {
		t.Fatal(err)
	}
	// Every trigger kind and a wait.
	g := validFlow()
	g.Triggers = []Trigger{
		{Signal: "s", When: "params.n > 1", Params: map[string]string{"n": "params.n"}},
		{Signals: []string{"a", "b"}, JoinKeys: []string{"date", "region"}, When: "true", Params: map[string]string{"n": "params.count"}},
		{OnFinish: &OnFinish{Flow: "up"}, Params: map[string]string{"n": "params.n"}},
		{Cron: "@daily", Catchup: CatchupAll, CatchupMax: 1000},
		{Cron: "@daily", Catchup: CatchupNone},
	}
	g.Steps[1].Wait = &Wait{Signal: "s", When: "params.n == 1", Timeout: Duration(time.Minute)}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	// A document of contracts alone is held to the contracts' rules only.
	c := &Flow{Signals: []Signal{{Name: "s", Params: []SignalParam{{Name: "p", Type: JSON}}}}}
	if !c.ContractsOnly() {
		t.Fatal("ContractsOnly() = false")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Steps without run are in-process (Go SDK) steps: fine for Validate.
	f := &Flow{Name: "x", Steps: []Step{{Name: "a"}}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestValidateRules covers the rules on flows built in Go, including values
// a YAML file cannot produce. Problems carry a field but no position.
func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breakf func(f *Flow)
		field  string
		phrase string
	}{
		{"no name", func(f *Flow) { f.Name = "" }, "name", "has no name"},
		{"long name", func(f *Flow) { f.Name = strings.Repeat("a", 101) }, "name", "not a valid flow name"},
		{"no steps", func(f *Flow) { f.Steps = nil }, "steps", "no steps"},
		{"param name", func(f *Flow) { f.Params[0].Name = "9n" }, `params["9n"]`, "not a valid param name"},
		{"param twice", func(f *Flow) { f.Params = append(f.Params, f.Params[0]) }, "params.n", "declared twice"},
		{"param no type", func(f *Flow) { f.Params[0].Type = "" }, "params.n.type", "unknown type"},
		{"default invalid JSON", func(f *Flow) { f.Params[0].Default = json.RawMessage(`{`) }, "params.n.default", "not valid JSON"},
		{"default empty", func(f *Flow) { f.Params[0].Default = json.RawMessage{} }, "params.n.default", "not valid JSON"},
		{"int default float", func(f *Flow) { f.Params[0].Default = json.RawMessage(`1.5`) }, "params.n.default", "want a whole number"},
		{"int default string", func(f *Flow) { f.Params[0].Default = json.RawMessage(`"1"`) }, "params.n.default", "does not fit type int"},
		{"float default string", func(f *Flow) {
			f.Params[0] = Param{Name: "x", Type: Float, Default: json.RawMessage(`"1"`)}
		}, "params.x.default", "want a finite number"},
		{"float default huge", func(f *Flow) {
			f.Params[0] = Param{Name: "x", Type: Float, Default: json.RawMessage(`1e999`)}
		}, "params.x.default", "want a finite number"},
		{"bool default", func(f *Flow) {
			f.Params[0] = Param{Name: "x", Type: Bool, Default: json.RawMessage(`1`)}
		}, "params.x.default", "want true or false"},
		{"string default", func(f *Flow) {
			f.Params[0] = Param{Name: "x", Type: String, Default: json.RawMessage(`1`)}
		}, "params.x.default", "want a string"},
		{"string default null", func(f *Flow) {
			f.Params[0] = Param{Name: "x", Type: String, Default: json.RawMessage(`null`)}
		}, "params.x.default", "want a string"},
		{"self need", func(f *Flow) { f.Steps[0].Needs = []string{"start"} }, "steps[0].needs[0]", "needs itself"},
		{"unknown need", func(f *Flow) { f.Steps[2].Needs = []string{"eacj"} }, "steps[2].needs[0]", `unknown step "eacj" (steps are: start, each, join); did you mean "each"?`},
		{"cycle", func(f *Flow) { f.Steps[0].Needs = []string{"join"} }, "steps[0].needs[0]", "cycle: start -> each -> join -> start"},
		{"duplicate step", func(f *Flow) { f.Steps[2].Name = "start" }, "steps[2].name", "defined twice"},
		{"NUL in run", func(f *Flow) { f.Steps[0].Run = "echo \x00" }, "steps[0].run", "NUL"},
		{"foreach both", func(f *Flow) { f.Steps[1].Foreach.Items = []json.RawMessage{json.RawMessage(`1`)} }, "steps[1].foreach", "not both"},
		{"foreach empty", func(f *Flow) { f.Steps[1].Foreach = &Foreach{} }, "steps[1].foreach", "foreach is empty"},
		{"foreach bad item", func(f *Flow) {
			f.Steps[1].Foreach = &Foreach{Items: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`x`)}}
		}, "steps[1].foreach[1]", "not valid JSON"},
		{"foreach backslash", func(f *Flow) { f.Steps[1].Foreach.Artifact = `a\b` }, "steps[1].foreach", "not a valid artifact name"},
		{"foreach trailing slash", func(f *Flow) { f.Steps[1].Foreach.Artifact = "start/" }, "steps[1].foreach", "not a valid artifact name"},
		{"foreach dot", func(f *Flow) { f.Steps[1].Foreach.Artifact = "./items.json" }, "steps[1].foreach", "not a valid artifact name"},
		{"negative attempts", func(f *Flow) { f.Steps[2].Retry.Attempts = -1 }, "steps[2].retry.attempts", "between 1 and 100"},
		{"negative backoff", func(f *Flow) { f.Steps[2].Retry.Backoff = -1 }, "steps[2].retry.backoff", "must not be negative"},
		{"negative max backoff", func(f *Flow) { f.Steps[2].Retry.MaxBackoff = -1 }, "steps[2].retry.max_backoff", "must not be negative"},
		{"negative timeout", func(f *Flow) { f.Steps[2].Timeout = -1 }, "steps[2].timeout", "more than 0"},
		{"env reserved lowercase", func(f *Flow) { f.Steps[0].Env = map[string]string{"baton_x": "1"} }, "steps[0].env.baton_x", "reserved"},
		{"env NUL", func(f *Flow) { f.Steps[0].Env = map[string]string{"X": "a\x00"} }, "steps[0].env.X", "NUL"},
		{"publish empty", func(f *Flow) { f.Steps[0].Publish = []string{""} }, "steps[0].publish[0]", "has no name"},
		{"max runs", func(f *Flow) { f.Concurrency = &Concurrency{MaxRuns: -2} }, "concurrency.max_runs", "at least 1"},
		{"strategy", func(f *Flow) { f.Concurrency = &Concurrency{Strategy: "x"} }, "concurrency.strategy", "unknown strategy"},
		{"trigger none", func(f *Flow) { f.Triggers = []Trigger{{}} }, "triggers[0]", "needs one of"},
		{"when blank", func(f *Flow) { f.Triggers = []Trigger{{Signal: "s", When: "  "}} }, "triggers[0].when", "when is empty"},
		{"status twice", func(f *Flow) {
			f.Triggers = []Trigger{{OnFinish: &OnFinish{Flow: "up", Status: []string{"failed", "failed"}}}}
		}, "triggers[0].on_finish.status[1]", "listed twice"},
		{"cron", func(f *Flow) { f.Triggers = []Trigger{{Cron: "* * *"}} }, "triggers[0].cron", "invalid schedule"},
		{"timezone", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", Timezone: "Nowhere/Land"}} }, "triggers[0].timezone", "unknown time zone"},
		{"signal param twice", func(f *Flow) {
			f.Signals[0].Params = append(f.Signals[0].Params, f.Signals[0].Params[0])
		}, "signals[0].params.n", "declared twice"},
		{"signal param type", func(f *Flow) { f.Signals[0].Params[0].Type = "" }, "signals[0].params.n.type", "unknown type"},
		{"signal twice", func(f *Flow) { f.Signals = append(f.Signals, f.Signals[0]) }, "signals[1].name", "declared twice"},
		{"signal and join", func(f *Flow) {
			f.Triggers = []Trigger{{Signal: "s", Signals: []string{"a", "b"}, JoinKeys: []string{"k"}}}
		}, "triggers[0]", "exactly one of signal, signals, on_finish or cron: split it into 2 triggers"},
		{"join one signal", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a"}, JoinKeys: []string{"k"}}} }, "triggers[0].signals", "2 or more signals"},
		{"join empty name", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a", ""}, JoinKeys: []string{"k"}}} }, "triggers[0].signals[1]", "has no name"},
		{"join twice", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a", "a"}, JoinKeys: []string{"k"}}} }, "triggers[0].signals[1]", "listed twice"},
		{"join no keys", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a", "b"}}} }, "triggers[0].join_keys", "a join needs join_keys"},
		{"join keys alone", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", JoinKeys: []string{"k"}}} }, "triggers[0].join_keys", "only applies to a join trigger"},
		{"join key name", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a", "b"}, JoinKeys: []string{"k", "9k"}}} }, "triggers[0].join_keys[1]", "not a valid param name"},
		{"join key twice", func(f *Flow) { f.Triggers = []Trigger{{Signals: []string{"a", "b"}, JoinKeys: []string{"k", "k"}}} }, "triggers[0].join_keys[1]", "listed twice"},
		{"when on cron", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", When: "true"}} }, "triggers[0].when", "only applies to a signal or join"},
		{"join when blank", func(f *Flow) {
			f.Triggers = []Trigger{{Signals: []string{"a", "b"}, JoinKeys: []string{"k"}, When: "\t"}}
		}, "triggers[0].when", "when is empty"},
		{"params undeclared", func(f *Flow) { f.Triggers = []Trigger{{Signal: "s", Params: map[string]string{"m": "params.m"}}} }, "triggers[0].params.m", `flow "sdk-flow" declares no param "m" (declared: n)`},
		{"params no params", func(f *Flow) {
			f.Params = nil
			f.Triggers = []Trigger{{Signal: "s", Params: map[string]string{"n": "1"}}}
		}, "triggers[0].params.n", "declare it under params first"},
		{"params blank", func(f *Flow) { f.Triggers = []Trigger{{Signal: "s", Params: map[string]string{"n": " "}}} }, "triggers[0].params.n", "the expression is empty"},
		{"params on cron", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", Params: map[string]string{"n": "1"}}} }, "triggers[0].params", "only applies to a signal, join (signals) or on_finish trigger"},
		{"catchup unknown", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", Catchup: "every"}} }, "triggers[0].catchup", `unknown catchup "every"`},
		{"catchup on signal", func(f *Flow) { f.Triggers = []Trigger{{Signal: "s", Catchup: CatchupLast}} }, "triggers[0].catchup", "only applies to a cron trigger"},
		{"catchup max alone", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", CatchupMax: 5}} }, "triggers[0].catchup_max", "only applies with catchup: all"},
		{"catchup max range", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", Catchup: CatchupAll, CatchupMax: 5000}} }, "triggers[0].catchup_max", "between 1 and 1000"},
		{"catchup max negative", func(f *Flow) { f.Triggers = []Trigger{{Cron: "@daily", Catchup: CatchupAll, CatchupMax: -1}} }, "triggers[0].catchup_max", "between 1 and 1000"},
		{"wait no signal", func(f *Flow) { f.Steps[1].Wait = &Wait{When: "true"} }, "steps[1].wait.signal", "wait names no signal"},
		{"wait bad signal", func(f *Flow) { f.Steps[1].Wait = &Wait{Signal: "a b"} }, "steps[1].wait.signal", "not a valid signal name"},
		{"wait blank when", func(f *Flow) { f.Steps[1].Wait = &Wait{Signal: "s", When: " "} }, "steps[1].wait.when", "when is empty"},
		{"wait negative timeout", func(f *Flow) { f.Steps[1].Wait = &Wait{Signal: "s", Timeout: -1} }, "steps[1].wait.timeout", "more than 0"},
		{"subflow input of a joined need", func(f *Flow) {
			f.Steps[2].Subflow = &Subflow{Flow: "kid", Params: map[string]string{"v": "${input.each/x}"}}
		}, "steps[2].subflow.params.v", "step join joins the tasks of each (foreach each)"},
		{"contracts and a param", func(f *Flow) { *f = Flow{Params: f.Params, Signals: f.Signals} }, "name", "has no name"},
		{"contracts bad", func(f *Flow) { *f = Flow{Signals: []Signal{{Name: "Bad"}}} }, "signals[0].name", "not a valid signal name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := validFlow()
			tc.breakf(f)
			err := f.Validate()
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Validate = %v, want Errors", err)
			}
			for _, e := range es {
				if e.Line != 0 || e.File != "" {
					t.Errorf("Validate error %q has a position", e)
				}
				if e.Field == tc.field && strings.Contains(e.Msg, tc.phrase) {
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tc.field, tc.phrase, es)
		})
	}
}

// TestParseUsesValidate checks that a rule reported by Validate on a Go
// flow is reported by Parse on the same flow written in YAML, with a
// position.
func TestParseUsesValidate(t *testing.T) {
	f := validFlow()
	f.Steps[0].Needs = []string{"join"}
	verr := f.Validate().(Errors)
	_, perr := Parse("f.yaml", []byte(`
name: sdk-flow
params: {n: {type: int, default: 3}}
steps:
  - {name: start, run: x, needs: [join]}
  - {name: each, run: x, needs: [start], foreach: items.json}
  - {name: join, run: x, needs: [each], retry: {attempts: 2, backoff: 1s}}
signals: [{name: done, params: {n: {type: int, required: true}}}]
`))
	pes := perr.(Errors)
	if len(verr) != 1 || len(pes) != 1 {
		t.Fatalf("Validate: %v\nParse: %v", verr, pes)
	}
	if verr[0].Field != pes[0].Field || verr[0].Msg != pes[0].Msg || pes[0].Line != 5 {
		t.Errorf("Validate: %v\nParse: %v", verr[0], pes[0])
	}
}

func TestDigest(t *testing.T) {
	f := validFlow()
	d := f.Digest()
	if len(d) != 64 || f.Digest() != d {
		t.Fatalf("Digest = %q, not a stable SHA-256", d)
	}
	g := validFlow()
	g.Steps[2].Retry.Attempts = 3
	if g.Digest() == d {
		t.Errorf("a changed flow has the same digest")
	}
	// An invalid flow does not panic and still has a stable digest.
	bad := validFlow()
	bad.Params[0].Default = json.RawMessage(`{`)
	bad.Steps[1].Foreach = &Foreach{Items: []json.RawMessage{{}, json.RawMessage(`nope`)}}
	if bd := bad.Digest(); bd != bad.Digest() || bd == d {
		t.Errorf("digest of an invalid flow is unstable or collides")
	}
	if string(bad.Params[0].Default) != "{" {
		t.Errorf("Digest changed the flow")
	}
}

func TestScopes(t *testing.T) {
	yes, no := true, false
	sh := func(name string, needs []string, foreach string) Step {
		s := Step{Name: name, Needs: needs, Run: "true"}
		if foreach != "" {
			s.Foreach = &Foreach{Artifact: foreach}
		}
		return s
	}
	ok := &Flow{Name: "ok", Steps: []Step{
		sh("start", nil, ""),
		{Name: "a", Needs: []string{"start"}, Run: "true", Foreach: &Foreach{Items: []json.RawMessage{json.RawMessage(`1`)}}},
		sh("b", []string{"a"}, "a/ys.json"),
		sh("c", []string{"b", "start"}, "b/zs.json"),
		sh("join-c", []string{"c", "b", "a"}, ""),
		sh("other", []string{"a"}, "a/ws.json"), // a second nest under a
		{Name: "join-b", Needs: []string{"join-c", "other", "a"}, Run: "true", Join: &yes},
		{Name: "join-a", Needs: []string{"join-b"}, Run: "true", Join: &yes},
		{Name: "body", Needs: []string{"b"}, Run: "true", Join: &no}, // runs per task of b
		sh("body2", []string{"body"}, ""),                            // still in b's level
		{Name: "join-body", Needs: []string{"body2"}, Run: "true", Join: &yes},
		sh("flat", []string{"start"}, "items.json"),
		sh("both", []string{"join-a", "flat"}, ""), // joins a root foreach beside a root step
	}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"start": "", "a": "a", "b": "a b", "c": "a b c", "join-c": "a b", "other": "a other",
		"join-b": "a", "join-a": "", "flat": "flat", "both": "", "body": "a b", "body2": "a b", "join-body": "a"}
	for name, sc := range ok.Scopes() {
		if got := strings.Join(sc, " "); got != want[name] {
			t.Errorf("scope of %s: %q, want %q", name, got, want[name])
		}
	}
	for _, c := range []struct {
		steps []Step
		msg   string
	}{
		{[]Step{sh("start", nil, ""), sh("a", []string{"start"}, "xs.json"), sh("b", []string{"a"}, "a/ys.json"),
			sh("skip", []string{"b"}, "b/zs.json"), sh("j", []string{"skip"}, ""), sh("end", []string{"j", "start"}, ""),
			sh("bad", []string{"skip", "start"}, "start/xs.json")},
			"steps[6].needs: step bad needs skip, which is in foreach a > b > skip, more than one level below"},
		{[]Step{sh("start", nil, ""), sh("a", []string{"start"}, "xs.json"), sh("b", []string{"a"}, "a/ys.json"),
			sh("e", []string{"start"}, "xs.json"), sh("f", []string{"e"}, "e/ys.json"), sh("j", []string{"b", "f"}, "")},
			"steps[5].needs: step j runs in foreach a but needs f, which is in foreach e > f"},
		{[]Step{sh("start", nil, ""), {Name: "j", Needs: []string{"start"}, Run: "true", Join: &yes}},
			"steps[1].join: step j joins, but none of its needs runs in a foreach"},
	} {
		f := &Flow{Name: "bad", Steps: c.steps}
		err := f.Validate()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("want %q, got %v", c.msg, err)
		}
	}
}

func TestSwitchRules(t *testing.T) {
	yes := true
	sw := func(cases map[string]string) *Switch { return &Switch{Cases: cases} }
	for _, c := range []struct {
		steps []Step
		msg   string
	}{
		{[]Step{{Name: "d", Run: "x", Switch: sw(map[string]string{"a": "a"})}, {Name: "a", Run: "x"}},
			`steps[0].switch.cases.a: case "a" leads to step "a", which does not need "d": add "d" to its needs`},
		{[]Step{{Name: "d", Run: "x", Switch: sw(map[string]string{"a": "nope"})}},
			`case "a" leads to unknown step "nope"`},
		{[]Step{{Name: "d", Run: "x", Switch: sw(map[string]string{"a": "d"})}},
			`steps[0].switch.max_iterations: case "a" leads back to step "d" (a loop): set max_iterations`},
		{[]Step{{Name: "h", Run: "x", Foreach: &Foreach{Items: []json.RawMessage{json.RawMessage("1")}}},
			{Name: "d", Needs: []string{"h"}, Run: "x", Switch: &Switch{Cases: map[string]string{"again": "h", "done": "e"}, MaxIterations: 3}},
			{Name: "e", Needs: []string{"d"}, Run: "x"}},
			`case "again" loops over step "h", which fans out`},
		{[]Step{{Name: "d", Run: "x", Switch: &Switch{Cases: map[string]string{"a": "a"}, MaxIterations: 2}}, {Name: "a", Needs: []string{"d"}, Run: "x"}},
			`steps[0].switch.max_iterations: max_iterations is set, but no case leads back`},
		{[]Step{{Name: "d", Run: "x", Switch: sw(map[string]string{"a": "a"})}, {Name: "a", Needs: []string{"d"}, Run: "x"},
			{Name: "other", Needs: []string{"d"}, Run: "x"}},
			`steps[2].needs: step "other" needs switch step "d" but is none of its cases (a)`},
		{[]Step{{Name: "d", Run: "x", Switch: sw(nil)}}, `steps[0].switch.cases: a switch needs cases`},
		{[]Step{{Name: "d", Run: "x", Foreach: &Foreach{Items: []json.RawMessage{json.RawMessage("1")}}, Switch: sw(map[string]string{"a": "a"})},
			{Name: "a", Needs: []string{"d"}, Run: "x", Join: &yes}},
			`case "a" leads to step "a", which joins`},
	} {
		f := &Flow{Name: "f", Steps: c.steps}
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("want %q, got %v", c.msg, err)
		}
	}
	// A YAML switch parses to the same, with its default artifact.
	f, err := Parse("f.yaml", []byte("name: f\nsteps:\n  - name: d\n    run: x\n    switch: {cases: {a: a, b: b}}\n  - {name: a, needs: [d], run: x}\n  - {name: b, needs: [d], run: x}\n"))
	if err != nil || f.Steps[0].Switch.CaseArtifact() != "case" || f.Steps[0].Switch.Cases["b"] != "b" {
		t.Fatalf("parse: %+v %v", f, err)
	}
	// A loop: the body from its head to the switch.
	lf := &Flow{Name: "l", Steps: []Step{{Name: "start", Run: "x"}, {Name: "head", Needs: []string{"start"}, Run: "x"},
		{Name: "mid", Needs: []string{"head"}, Run: "x"}, {Name: "side", Needs: []string{"start"}, Run: "x"},
		{Name: "d", Needs: []string{"mid", "side"}, Run: "x", Switch: &Switch{Cases: map[string]string{"again": "head", "done": "end"}, MaxIterations: 5}},
		{Name: "end", Needs: []string{"d"}, Run: "x"}}}
	if err := lf.Validate(); err != nil {
		t.Fatal(err)
	}
	if body := strings.Join(lf.LoopBody("d", "head"), " "); body != "head mid d" {
		t.Fatalf("loop body %q, want head mid d", body)
	}
	// A case of a foreach switch runs in its level.
	g := &Flow{Name: "g", Steps: []Step{{Name: "d", Run: "x", Foreach: &Foreach{Items: []json.RawMessage{json.RawMessage("1")}},
		Switch: sw(map[string]string{"a": "a"})}, {Name: "a", Needs: []string{"d"}, Run: "x"}}}
	if err := g.Validate(); err != nil || strings.Join(g.Scopes()["a"], " ") != "d" {
		t.Fatalf("case of a foreach switch: %v %v", g.Scopes(), err)
	}
}

func TestResourcesAndLabels(t *testing.T) {
	f, err := Parse("f.yaml", []byte("name: f\nsteps:\n  - name: a\n    run: x\n    resources: {cpu: 0.5, memory: 512Mi, gpu: 1}\n    labels: {accel: a100}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Steps[0].Resources
	if r.CPU != 0.5 || r.Memory != 512<<20 || r.GPU != 1 || r.Milli() != 500 || r.MiB() != 512 || f.Steps[0].Labels["accel"] != "a100" {
		t.Fatalf("resources %+v labels %v", r, f.Steps[0].Labels)
	}
	for _, c := range []struct{ yaml, msg string }{
		{"resources: {memory: lots}", `steps[0].resources.memory: "lots" is not a size`},
		{"resources: {cpu: fast}", `steps[0].resources.cpu: must be a number of cores`},
		{"resources: {cpu: -1}", `steps[0].resources.cpu: cpu is -1`},
		{"resources: {gpu: 1.5}", `steps[0].resources.gpu: must be a whole number`},
		{"resources: {disk: 1}", `steps[0].resources.disk: unknown key "disk" (allowed: cpu, gpu, memory)`},
		{"labels: {'a=b': x}", `steps[0].labels["a=b"]: label "a=b": a key is`},
	} {
		_, err := Parse("f.yaml", []byte("name: f\nsteps:\n  - name: a\n    run: x\n    "+c.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: want %q, got %v", c.yaml, c.msg, err)
		}
	}
	if n, err := ParseBytes("2Gi"); err != nil || n != 2<<30 {
		t.Fatalf("2Gi = %d %v", n, err)
	}
}
