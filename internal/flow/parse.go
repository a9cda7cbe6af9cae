package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/dur"
)

// Check is an extra rule a caller applies, e.g. signal names against
// registered contracts; its errors, whose Field is a field path like
// triggers[0].when, gain line and column like the built-in rules'.
type Check func(f *Flow) Errors

// ParseFile reads and parses the flow file at path, applying checks as
// Parse does.
func ParseFile(path string, checks ...Check) (*Flow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, Errors{{File: path, Msg: "cannot read the flow file: " + msg}}
	}
	return Parse(path, data, checks...)
}

// Parse parses a flow file's YAML and validates the flow. file names the
// file in error messages. On failure it returns Errors holding every problem
// found (up to a few dozen), each with its line, column and field.
//
// A document whose only key is signals (besides description and x- keys)
// declares signal contracts and nothing else, as a signals.yaml file does:
// Parse checks only the contracts and returns a Flow whose ContractsOnly is
// true.
//
// checks run, in order, only when the built-in rules found no problem.
func Parse(file string, data []byte, checks ...Check) (*Flow, error) {
	d := &decoder{pos: map[string]pos{}, budget: jsonBudget, quiet: map[string]bool{}}
	root := parseYAML(data, &d.errs)
	if root == nil {
		return nil, d.errs.result(file)
	}
	if root.kind != mapKind {
		if root.kind != badKind {
			d.fail(root.pos, "", "a flow file is a mapping with name, steps and the other flow keys, not %s", root.kind)
		}
		return nil, d.errs.result(file)
	}
	f := d.flow(root)

	// The semantic rules live in Validate; here they only gain positions.
	// A field that already failed to decode holds a zero value, so what
	// Validate says below it would only repeat the first problem.
	failed := make([]string, 0, len(d.errs))
	for _, e := range d.errs {
		if e.Field != "" {
			failed = append(failed, e.Field)
		}
	}
	var problems errorList
	if contractsDocument(root) && f.ContractsOnly() {
		problems = f.contractProblems()
	} else {
		// Keys such as steps: [] make a flow even when they decode to
		// nothing, so the flow's rules apply whatever ContractsOnly says.
		problems = f.flowProblems()
	}
	for _, e := range problems {
		if d.quiet[e.Field] || slices.ContainsFunc(failed, func(q string) bool { return within(e.Field, q) }) {
			continue
		}
		d.place(e)
	}
	if len(d.errs) == 0 {
		for _, check := range checks {
			if check == nil {
				continue
			}
			for _, e := range check(f) {
				if e != nil {
					c := *e
					d.place(&c)
				}
			}
		}
	}
	if err := d.errs.result(file); err != nil {
		return nil, err
	}
	return f, nil
}

// contractsDocument reports whether the document's keys are those of a
// signals file: signals, and at most description and x- keys besides.
func contractsDocument(root *value) bool {
	hasSignals := false
	for _, e := range root.entries {
		switch {
		case e.key == "signals":
			hasSignals = true
		case e.key == "description" || strings.HasPrefix(e.key, "x-"):
		default:
			return false
		}
	}
	return hasSignals
}

// place gives a problem found on the decoded flow the position of its
// field, and adds it.
func (d *decoder) place(e *Error) {
	p := d.position(e.Field)
	e.Line, e.Column = p.line, p.col
	d.errs = append(d.errs, e)
}

// decoder builds a Flow from the value tree, remembering where each field
// was written.
type decoder struct {
	errs   errorList
	pos    map[string]pos // field path -> where its value is
	budget int            // see jsonBudget
	// quiet holds fields whose problems would only repeat one already
	// reported elsewhere (a trigger whose kind failed to decode "has no
	// kind").
	quiet map[string]bool
}

func (d *decoder) fail(p pos, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// position finds where field, or the nearest enclosing field, was written.
func (d *decoder) position(field string) pos {
	for {
		if p, ok := d.pos[field]; ok {
			return p
		}
		parent, ok := parentPath(field)
		if !ok {
			return pos{1, 1}
		}
		field = parent
	}
}

// handlers decode the keys a mapping may hold.
type handlers map[string]func(v *value, path string)

// fields calls the handler of each key of mapping v, in file order, and
// reports unknown keys. It returns false when v is not a mapping.
func (d *decoder) fields(v *value, path string, hs handlers) bool {
	allowed := make([]string, 0, len(hs))
	for k := range hs {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	switch v.kind {
	case mapKind:
	case badKind:
		return false
	default:
		d.fail(v.pos, path, "must be a mapping with keys %s, not %s", strings.Join(allowed, ", "), v.kind)
		return false
	}
	d.pos[path] = v.pos
	for _, e := range v.entries {
		kp := keyPath(path, e.key)
		h, ok := hs[e.key]
		if !ok {
			// Top-level x- keys hold YAML anchors for reuse, as in
			// docker-compose files; baton ignores them.
			if path == "" && strings.HasPrefix(e.key, "x-") {
				continue
			}
			d.fail(e.keyPos, kp, "unknown key %q (allowed: %s)%s", e.key, strings.Join(allowed, ", "), didYouMean(e.key, allowed))
			continue
		}
		d.pos[kp] = e.val.pos
		h(e.val, kp)
	}
	return true
}

// entries returns the entries of a mapping with free-form keys (params,
// env); null stands for an empty mapping.
func (d *decoder) entries(v *value, path, what string) []entry {
	switch v.kind {
	case mapKind:
		d.pos[path] = v.pos
		for _, e := range v.entries {
			d.pos[keyPath(path, e.key)] = e.val.pos
		}
		return v.entries
	case nullKind, badKind:
	default:
		d.fail(v.pos, path, "must be a mapping of %s, not %s", what, v.kind)
	}
	return nil
}

// seq returns the items of a list; null stands for an empty list.
func (d *decoder) seq(v *value, path, what string) []*value {
	switch v.kind {
	case seqKind:
		for i, it := range v.items {
			d.pos[indexPath(path, i)] = it.pos
		}
		return v.items
	case nullKind, badKind:
	default:
		d.fail(v.pos, path, "must be a list of %s, not %s", what, v.kind)
	}
	return nil
}

func (d *decoder) str(v *value, path string) (string, bool) {
	switch v.kind {
	case stringKind:
		return v.text, true
	case badKind:
	case nullKind:
		d.fail(v.pos, path, "has no value: write a string, or remove the key")
	case mapKind, seqKind:
		d.fail(v.pos, path, "must be a string, not %s", v.kind)
	default:
		d.fail(v.pos, path, "must be a string, not %s: put it in quotes (%q)", v.kind, v.text)
	}
	return "", false
}

// optStr decodes a string whose empty value Validate reads as "not set":
// written out empty, it is checked here with Validate's rule.
func (d *decoder) optStr(v *value, path string, rule func(string) string) string {
	s, ok := d.str(v, path)
	if ok && s == "" {
		d.fail(v.pos, path, "%s", rule(""))
	}
	return s
}

// text decodes any scalar as its text, for values that end up as strings
// anyway (env values, string defaults): FOO: 4 means "4".
func (d *decoder) text(v *value, path, hint string) (string, bool) {
	switch v.kind {
	case stringKind, intKind, floatKind, boolKind:
		return v.text, true
	case badKind:
	case nullKind:
		d.fail(v.pos, path, "has no value: %s", hint)
	default:
		d.fail(v.pos, path, "must be a single value, not %s", v.kind)
	}
	return "", false
}

func (d *decoder) integer(v *value, path string) (int, bool) {
	switch {
	case v.kind == intKind && !v.overflow && v.i >= math.MinInt && v.i <= math.MaxInt:
		return int(v.i), true
	case v.kind == intKind:
		d.fail(v.pos, path, "%s is too large", v.text)
	case v.kind == stringKind && plainNumber(v.text, v.pos) != nil:
		d.fail(v.pos, path, "must be a number, not a string: write %s without quotes", v.text)
	case v.kind == badKind:
	default:
		d.fail(v.pos, path, "must be a whole number, not %s", v.kind)
	}
	return 0, false
}

func (d *decoder) boolean(v *value, path string) (bool, bool) {
	switch v.kind {
	case boolKind:
		return v.b, true
	case badKind:
	default:
		d.fail(v.pos, path, "must be true or false, not %s", v.kind)
	}
	return false, false
}

func (d *decoder) duration(v *value, path string) (Duration, bool) {
	switch v.kind {
	case stringKind:
		t, err := dur.Parse(v.text)
		if err != nil {
			d.fail(v.pos, path, "%q is not a duration: write a number with a unit, such as \"30s\", \"5m\", \"1h30m\" or \"7d\"", v.text)
			return 0, false
		}
		return Duration(t), true
	case intKind, floatKind:
		d.fail(v.pos, path, "%s has no unit: write a duration such as \"%ss\" or \"%sm\"", v.text, v.text, v.text)
	case badKind:
	default:
		d.fail(v.pos, path, "must be a duration such as \"30s\", not %s", v.kind)
	}
	return 0, false
}

// strList decodes a list of strings; a single string is a one-item list.
func (d *decoder) strList(v *value, path string) ([]string, bool) {
	if v.kind == stringKind {
		d.pos[indexPath(path, 0)] = v.pos
		return []string{v.text}, true
	}
	if v.kind != seqKind && v.kind != nullKind && v.kind != badKind {
		d.fail(v.pos, path, "must be a list of strings, not %s", v.kind)
		return nil, false
	}
	items := d.seq(v, path, "strings")
	out := make([]string, 0, len(items))
	ok := true
	for i, it := range items {
		s, good := d.str(it, indexPath(path, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// jsonValue converts v to canonical JSON, reporting values it cannot hold.
func (d *decoder) jsonValue(v *value, path string) (json.RawMessage, bool) {
	x, err := toGo(v, &d.budget)
	if err == nil {
		var raw json.RawMessage
		if raw, err = canonicalJSON(x); err == nil {
			return raw, true
		}
	}
	if !errors.Is(err, errReported) {
		d.fail(v.pos, path, "%v", err)
	}
	return nil, false
}

func (d *decoder) flow(root *value) *Flow {
	f := &Flow{}
	d.fields(root, "", handlers{
		"name":        func(v *value, p string) { f.Name, _ = d.str(v, p) },
		"description": func(v *value, p string) { f.Description, _ = d.str(v, p) },
		"params":      func(v *value, p string) { f.Params = d.params(v, p) },
		"triggers":    func(v *value, p string) { f.Triggers = d.triggers(v, p) },
		"concurrency": func(v *value, p string) { f.Concurrency = d.concurrency(v, p) },
		"steps":       func(v *value, p string) { f.Steps = d.steps(v, p) },
		"signals":     func(v *value, p string) { f.Signals = d.signals(v, p) },
	})
	return f
}

func (d *decoder) params(v *value, path string) []Param {
	var out []Param
	for _, e := range d.entries(v, path, "param names to {type, default, description}") {
		at := keyPath(path, e.key)
		switch e.val.kind {
		case nullKind:
			d.fail(e.val.pos, at, "has no value: write %s: {type: string} for a required param, or give a default", e.key)
			continue
		case stringKind, intKind, floatKind, boolKind:
			d.fail(e.val.pos, at, "a param is a mapping: write %s: {default: %s}, or give a type such as {type: int, default: 3}", e.key, e.val.text)
			continue
		}
		p := Param{Name: e.key, Type: String}
		var def *value
		ok := d.fields(e.val, at, handlers{
			"type":        func(v *value, at string) { t, _ := d.str(v, at); p.Type = ParamType(t) },
			"default":     func(v *value, _ string) { def = v },
			"description": func(v *value, at string) { p.Description, _ = d.str(v, at) },
		})
		if !ok {
			continue
		}
		if def != nil && typeProblem(p.Type) == "" {
			p.Default = d.paramDefault(def, p.Type, at+".default")
		}
		out = append(out, p)
	}
	return out
}

// paramDefault converts a param's default to canonical JSON. YAML types
// must match: a quoted "3" is not an int.
func (d *decoder) paramDefault(v *value, t ParamType, path string) json.RawMessage {
	if v.kind == nullKind && t != JSON {
		hint := "write a value, or remove default to make the param required"
		if t == String {
			hint = `write "" for an empty string, or remove default to make the param required`
		}
		d.fail(v.pos, path, "has no value: %s", hint)
		return nil
	}
	switch t {
	case String:
		if s, ok := d.text(v, path, ""); ok {
			raw, _ := canonicalJSON(s)
			return raw
		}
	case Int:
		if v.kind == floatKind {
			d.fail(v.pos, path, "%s is not a whole number: use type: float, or write an integer", v.text)
			return nil
		}
		if v.kind == intKind && v.overflow {
			d.fail(v.pos, path, "%s does not fit in a 64-bit int", v.text)
			return nil
		}
		if i, ok := d.integer(v, path); ok {
			return json.RawMessage(strconv.Itoa(i))
		}
	case Float:
		switch v.kind {
		case intKind, floatKind:
			x := v.f
			var err error
			switch {
			case v.kind == intKind && !v.overflow:
				x = float64(v.i)
			case v.kind == intKind:
				x, err = strconv.ParseFloat(strings.ReplaceAll(v.text, "_", ""), 64)
			}
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				d.fail(v.pos, path, "%s is not a finite number", v.text)
				return nil
			}
			raw, _ := canonicalJSON(x)
			return raw
		case stringKind:
			if plainNumber(v.text, v.pos) != nil {
				d.fail(v.pos, path, "must be a number, not a string: write %s without quotes", v.text)
				return nil
			}
		}
		if v.kind != badKind {
			d.fail(v.pos, path, "must be a number, not %s", v.kind)
		}
	case Bool:
		if v.kind == stringKind {
			switch strings.ToLower(v.text) {
			case "true", "false":
				d.fail(v.pos, path, "must be true or false, not a string: write %s without quotes", v.text)
				return nil
			case "yes", "no", "on", "off", "y", "n":
				d.fail(v.pos, path, "must be true or false: YAML 1.2 reads %s as a string", v.text)
				return nil
			}
		}
		if b, ok := d.boolean(v, path); ok {
			raw, _ := canonicalJSON(b)
			return raw
		}
	case JSON:
		if raw, ok := d.jsonValue(v, path); ok {
			return raw
		}
	}
	return nil
}

func (d *decoder) triggers(v *value, path string) []Trigger {
	items := d.seq(v, path, "triggers")
	out := make([]Trigger, 0, len(items))
	for i, it := range items {
		var t Trigger
		at := indexPath(path, i)
		// kinds counts the kind keys written, whether or not they decoded.
		kinds := 0
		d.fields(it, at, handlers{
			"signal": func(v *value, p string) {
				kinds++
				t.Signal = d.optStr(v, p, func(s string) string { return nameProblem("signal", s) })
			},
			"signals": func(v *value, p string) {
				kinds++
				if v.kind == stringKind {
					d.fail(v.pos, p, "must be a list of 2 or more signals to join: for a single signal, write signal: %s", v.text)
					return
				}
				var ok bool
				if t.Signals, ok = d.strList(v, p); ok && len(t.Signals) == 0 {
					d.fail(v.pos, p, "lists no signals: list 2 or more signals to join, or write signal: NAME for one")
				}
			},
			"join_keys": func(v *value, p string) {
				var ok bool
				if t.JoinKeys, ok = d.strList(v, p); ok && len(t.JoinKeys) == 0 {
					d.fail(v.pos, p, "%s", joinKeysMissing)
				}
			},
			"when":   func(v *value, p string) { t.When = d.optStr(v, p, whenProblem) },
			"params": func(v *value, p string) { t.Params = d.exprs(v, p) },
			"on_finish": func(v *value, p string) {
				kinds++
				t.OnFinish = d.onFinish(v, p)
			},
			"cron": func(v *value, p string) {
				kinds++
				t.Cron = d.optStr(v, p, cronProblem)
			},
			"timezone": func(v *value, p string) { t.Timezone = d.optStr(v, p, timezoneProblem) },
			"catchup":  func(v *value, p string) { t.Catchup = d.optStr(v, p, catchupProblem) },
			"catchup_max": func(v *value, p string) {
				if n, ok := d.integer(v, p); ok {
					t.CatchupMax = n
					if n == 0 {
						d.fail(v.pos, p, "%s", catchupMaxProblem(0))
					}
				}
			},
		})
		if t.Kind() == "" && kinds > 0 {
			// The kind key written was reported; that the trigger has
			// no kind, or that keys need one, would only repeat it.
			for _, q := range []string{"", ".join_keys", ".when", ".params", ".timezone", ".catchup", ".catchup_max"} {
				d.quiet[at+q] = true
			}
		}
		// Keep indexes aligned with the file even for a broken trigger.
		out = append(out, t)
	}
	return out
}

// exprs decodes a trigger's params: run param names to CEL expressions.
func (d *decoder) exprs(v *value, path string) map[string]string {
	es := d.entries(v, path, "run params to CEL expressions")
	if len(es) == 0 {
		return nil
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		at := keyPath(path, e.key)
		switch e.val.kind {
		case nullKind:
			d.fail(e.val.pos, at, "has no value: write a CEL expression such as params.%s", e.key)
			continue
		case intKind, floatKind, boolKind:
			d.fail(e.val.pos, at, "must be a CEL expression in a string, not %s: for a constant, quote it (%q)", e.val.kind, e.val.text)
			continue
		}
		if s, ok := d.str(e.val, at); ok {
			if s == "" {
				d.fail(e.val.pos, at, "%s", exprProblem(e.key, ""))
			}
			out[e.key] = s
		}
	}
	return out
}

// defaultFinishStatus is what an on_finish trigger reacts to by default.
var defaultFinishStatus = []string{"succeeded"}

func (d *decoder) onFinish(v *value, path string) *OnFinish {
	if v.kind == stringKind {
		return &OnFinish{Flow: v.text, Status: slices.Clone(defaultFinishStatus)}
	}
	if v.scalar() && v.kind != badKind {
		d.fail(v.pos, path, "must be a flow name or a mapping {flow: NAME, status: [succeeded]}, not %s", v.kind)
		return &OnFinish{}
	}
	of := &OnFinish{}
	statusSet := false
	d.fields(v, path, handlers{
		"flow": func(v *value, p string) { of.Flow, _ = d.str(v, p) },
		"status": func(v *value, p string) {
			statusSet = true
			var ok bool
			if of.Status, ok = d.strList(v, p); ok && len(of.Status) == 0 {
				d.fail(v.pos, p, "lists no status: list succeeded and/or failed, or remove status (succeeded)")
			}
		},
	})
	if !statusSet {
		of.Status = slices.Clone(defaultFinishStatus)
	}
	return of
}

func (d *decoder) concurrency(v *value, path string) *Concurrency {
	// Defaults are written out so the stored flow says what the engine does.
	c := &Concurrency{MaxRuns: 1, Strategy: "sequential"}
	d.fields(v, path, handlers{
		"max_runs": func(v *value, p string) {
			if n, ok := d.integer(v, p); ok {
				c.MaxRuns = n
				if n == 0 {
					d.fail(v.pos, p, "%s", maxRunsProblem(0))
				}
			}
		},
		"strategy": func(v *value, p string) { c.Strategy = d.optStr(v, p, strategyProblem) },
	})
	return c
}

func (d *decoder) steps(v *value, path string) []Step {
	items := d.seq(v, path, "steps")
	out := make([]Step, 0, len(items))
	for i, it := range items {
		out = append(out, d.step(it, indexPath(path, i)))
	}
	return out
}

func (d *decoder) step(v *value, path string) Step {
	var s Step
	hasRun := false
	ok := d.fields(v, path, handlers{
		"name":  func(v *value, p string) { s.Name, _ = d.str(v, p) },
		"needs": func(v *value, p string) { s.Needs, _ = d.strList(v, p) },
		"run": func(v *value, p string) {
			hasRun = true
			var ok bool
			if s.Run, ok = d.str(v, p); ok && strings.TrimSpace(s.Run) == "" {
				d.fail(v.pos, p, "is empty: write the shell command the step runs")
			}
		},
		"foreach": func(v *value, p string) { s.Foreach = d.foreach(v, p) },
		"join": func(v *value, p string) {
			if b, ok := d.boolean(v, p); ok {
				s.Join = &b
			}
		},
		"retry": func(v *value, p string) { s.Retry = d.retry(v, p) },
		"timeout": func(v *value, p string) {
			if t, ok := d.duration(v, p); ok {
				s.Timeout = t
				if t == 0 {
					d.fail(v.pos, p, "%s", timeoutProblem(0))
				}
			}
		},
		"publish": func(v *value, p string) { s.Publish, _ = d.strList(v, p) },
		"env":     func(v *value, p string) { s.Env = d.env(v, p) },
		"wait":    func(v *value, p string) { s.Wait = d.wait(v, p) },
		"switch":  func(v *value, p string) { s.Switch = d.switchOf(v, p) },
		"training_set": func(v *value, p string) {
			hasRun = true
			s.TrainingSet = d.trainingSet(v, p)
		},
		"subflow": func(v *value, p string) {
			hasRun = true
			s.Subflow = d.subflow(v, p)
		},
		"resources": func(v *value, p string) { s.Resources = d.resources(v, p) },
		"labels":    func(v *value, p string) { s.Labels = d.env(v, p) },
	})
	if ok && !hasRun {
		d.fail(v.pos, path+".run", "the step has no run: every step of a flow file runs a shell command (add run: ...), builds a training set (training_set: ...) or runs a subflow (subflow: {flow: NAME})")
	}
	return s
}

// trainingSet decodes {labels, features, out, time, keys}.
func (d *decoder) trainingSet(v *value, path string) *TrainingSet {
	ts := &TrainingSet{}
	if !d.fields(v, path, handlers{
		"labels":   func(v *value, p string) { ts.Labels, _ = d.str(v, p) },
		"features": func(v *value, p string) { ts.Features, _ = d.strList(v, p) },
		"out":      func(v *value, p string) { ts.Out, _ = d.str(v, p) },
		"time":     func(v *value, p string) { ts.Time, _ = d.str(v, p) },
		"keys":     func(v *value, p string) { ts.Keys = d.env(v, p) },
	}) {
		return nil
	}
	return ts
}

// wait decodes a step's wait: a signal name, or {signal, when, timeout}.
func (d *decoder) wait(v *value, path string) *Wait {
	if v.kind == stringKind {
		return &Wait{Signal: v.text}
	}
	if v.scalar() && v.kind != badKind {
		d.fail(v.pos, path, "must be a signal name or a mapping {signal: NAME, when: CONDITION, timeout: 1h}, not %s", v.kind)
		return nil
	}
	w := &Wait{}
	if !d.fields(v, path, handlers{
		"signal": func(v *value, p string) { w.Signal, _ = d.str(v, p) },
		"when":   func(v *value, p string) { w.When = d.optStr(v, p, whenProblem) },
		"timeout": func(v *value, p string) {
			if t, ok := d.duration(v, p); ok {
				w.Timeout = t
				if t == 0 {
					d.fail(v.pos, p, "%s", timeoutProblem(0))
				}
			}
		},
	}) {
		return nil
	}
	return w
}

// resources decodes {cpu: 2, memory: 4Gi, gpu: 1}.
func (d *decoder) resources(v *value, path string) *Resources {
	r := &Resources{}
	if !d.fields(v, path, handlers{
		"cpu": func(v *value, p string) {
			switch v.kind {
			case intKind, floatKind:
				f, err := strconv.ParseFloat(v.text, 64)
				if err != nil {
					d.fail(v.pos, p, "%q is not a number of cores", v.text)
					return
				}
				r.CPU = f
			case badKind:
			default:
				d.fail(v.pos, p, "must be a number of cores (0.5, 2), not %s", v.kind)
			}
		},
		"memory": func(v *value, p string) {
			if t, ok := d.text(v, p, "write a size such as 512Mi or 2Gi"); ok {
				n, err := ParseBytes(t)
				if err != nil {
					d.fail(v.pos, p, "%v", err)
					return
				}
				r.Memory = n
			}
		},
		"gpu": func(v *value, p string) { r.GPU, _ = d.integer(v, p) },
	}) {
		return nil
	}
	return r
}

// subflow decodes a flow name, or {flow: NAME, params: {NAME: VALUE}}.
func (d *decoder) subflow(v *value, path string) *Subflow {
	if v.kind == stringKind {
		return &Subflow{Flow: v.text}
	}
	sf := &Subflow{}
	if !d.fields(v, path, handlers{
		"flow":   func(v *value, p string) { sf.Flow, _ = d.str(v, p) },
		"params": func(v *value, p string) { sf.Params = d.env(v, p) },
	}) {
		return nil
	}
	return sf
}

// switchOf decodes {on: ARTIFACT, cases: {CASE: STEP, ...}}.
func (d *decoder) switchOf(v *value, path string) *Switch {
	sw := &Switch{}
	if !d.fields(v, path, handlers{
		"on":    func(v *value, p string) { sw.On, _ = d.str(v, p) },
		"cases": func(v *value, p string) { sw.Cases = d.env(v, p) },
		"max_iterations": func(v *value, p string) {
			if n, ok := d.integer(v, p); ok {
				sw.MaxIterations = int(n)
			}
		},
	}) {
		return nil
	}
	return sw
}

func (d *decoder) foreach(v *value, path string) *Foreach {
	switch v.kind {
	case stringKind:
		if !strings.HasPrefix(strings.TrimSpace(v.text), "[") {
			return &Foreach{Artifact: v.text}
		}
		var items []json.RawMessage
		if err := json.Unmarshal([]byte(v.text), &items); err != nil {
			d.fail(v.pos, path, "%q is not a valid JSON array (%v): a foreach string starting with [ is an inline JSON array", abbreviate(v.text), err)
			return nil
		}
		fe := &Foreach{}
		for _, it := range items {
			raw, err := canonicalize(it)
			if err != nil {
				d.fail(v.pos, path, "%v", err)
				return nil
			}
			fe.Items = append(fe.Items, raw)
		}
		return fe
	case seqKind:
		fe := &Foreach{}
		for i, it := range d.seq(v, path, "items") {
			raw, ok := d.jsonValue(it, indexPath(path, i))
			if !ok {
				return nil
			}
			fe.Items = append(fe.Items, raw)
		}
		return fe
	case badKind:
	case nullKind:
		d.fail(v.pos, path, "has no value: name an upstream artifact that holds a JSON array (items.json), or list the items")
	default:
		d.fail(v.pos, path, "must be an artifact name such as items.json, or a list of items, not %s", v.kind)
	}
	return nil
}

func (d *decoder) retry(v *value, path string) Retry {
	var r Retry
	d.fields(v, path, handlers{
		"attempts": func(v *value, p string) {
			if n, ok := d.integer(v, p); ok {
				r.Attempts = n
				if n == 0 {
					d.fail(v.pos, p, "%s", attemptsProblem(0))
				}
			}
		},
		"backoff":     func(v *value, p string) { r.Backoff, _ = d.duration(v, p) },
		"max_backoff": func(v *value, p string) { r.MaxBackoff, _ = d.duration(v, p) },
	})
	return r
}

func (d *decoder) env(v *value, path string) map[string]string {
	es := d.entries(v, path, "variable names to values")
	if len(es) == 0 {
		return nil
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		if s, ok := d.text(e.val, keyPath(path, e.key), `write "" for an empty value`); ok {
			out[e.key] = s
		}
	}
	return out
}

func (d *decoder) signals(v *value, path string) []Signal {
	items := d.seq(v, path, "signal contracts")
	out := make([]Signal, 0, len(items))
	for i, it := range items {
		var sg Signal
		d.fields(it, indexPath(path, i), handlers{
			"name":        func(v *value, p string) { sg.Name, _ = d.str(v, p) },
			"description": func(v *value, p string) { sg.Description, _ = d.str(v, p) },
			"params":      func(v *value, p string) { sg.Params = d.signalParams(v, p) },
		})
		out = append(out, sg)
	}
	return out
}

func (d *decoder) signalParams(v *value, path string) []SignalParam {
	var out []SignalParam
	for _, e := range d.entries(v, path, "param names to {type, required}") {
		at := keyPath(path, e.key)
		switch e.val.kind {
		case nullKind:
			d.fail(e.val.pos, at, "has no value: write %s: {type: string}", e.key)
			continue
		case stringKind, intKind, floatKind, boolKind:
			d.fail(e.val.pos, at, "a signal param is a mapping: write %s: {type: %s}", e.key, e.val.text)
			continue
		}
		p := SignalParam{Name: e.key, Type: String}
		ok := d.fields(e.val, at, handlers{
			"type":     func(v *value, at string) { t, _ := d.str(v, at); p.Type = ParamType(t) },
			"required": func(v *value, at string) { p.Required, _ = d.boolean(v, at) },
		})
		if ok {
			out = append(out, p)
		}
	}
	return out
}
