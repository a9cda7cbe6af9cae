package flow

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/baton-ml/baton/internal/dur"
)

// Validate checks the rules every flow follows, however it was built: names,
// unique steps, known needs, no cycles, foreach sources, retry bounds, param
// defaults that fit their types, trigger kinds, joins, params and schedules,
// waits, env names. A contracts-only flow (see ContractsOnly) is held to the
// signal contracts' rules alone. It returns Errors whose Field says where
// each problem is, or nil. CEL expressions (when, trigger params) are only
// checked for being there: compiling them is the caller's (see Check).
//
// Zero values mean "not set" (no retry, no timeout, concurrency defaults,
// on_finish status [succeeded]); Parse refuses the same values when a file
// writes them explicitly, using the same rule functions below.
func (f *Flow) Validate() error {
	return f.problems().result("")
}

// problems holds every rule. Parse runs it too, so a flow file and a flow
// built in Go are held to exactly the same rules. A contracts-only document
// (see ContractsOnly) is held to the contracts' rules alone.
func (f *Flow) problems() errorList {
	if f.ContractsOnly() {
		return f.contractProblems()
	}
	return f.flowProblems()
}

// flowProblems holds the rules of a flow.
func (f *Flow) flowProblems() errorList {
	var l errorList
	if m := nameProblem("flow", f.Name); m != "" {
		l.add("name", "%s", m)
	}
	f.checkParams(&l)
	f.checkTriggers(&l)
	f.checkConcurrency(&l)
	f.checkSteps(&l)
	f.checkSignals(&l)
	return l
}

// contractProblems holds the rules of a document that only declares
// signal contracts.
func (f *Flow) contractProblems() errorList {
	var l errorList
	f.checkSignals(&l)
	return l
}

var (
	paramNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// The closed sets of words a flow may use.
var (
	paramTypes     = []ParamType{String, Int, Float, Bool, JSON}
	strategies     = []string{"sequential", "parallel", "first_only", "last_only", "strict_sequential"}
	finishStatuses = []string{"succeeded", "failed"}
	catchups       = []string{CatchupNone, CatchupLast, CatchupAll}
)

// MaxCatchup bounds a cron trigger's catchup_max.
const MaxCatchup = 1000

// cronSpec is what a cron trigger accepts: the five standard fields or a
// descriptor such as @hourly or @every 5m.
const cronSpec = cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor

// Each rule below returns "" when the value is fine and otherwise a message
// saying what is wrong and what to write instead.

func nameProblem(what, s string) string {
	switch {
	case s == "":
		return fmt.Sprintf("the %s has no name", what)
	case !ValidName(s):
		return fmt.Sprintf("%q is not a valid %s name: use lowercase letters, digits, _ and -, starting with a letter or digit (at most 100 characters)", s, what)
	}
	return ""
}

func paramNameProblem(s string) string {
	if len(s) > 100 || !paramNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid param name: use lowercase letters, digits and _, not starting with a digit (it becomes $BATON_PARAM_%s)", s, strings.ToUpper(s))
	}
	return ""
}

func typeProblem(t ParamType) string {
	if !slices.Contains(paramTypes, t) {
		return fmt.Sprintf("unknown type %q (types are: string, int, float, bool, json)", t)
	}
	return ""
}

func attemptsProblem(n int) string {
	if n < 1 || n > 100 {
		return fmt.Sprintf("attempts is %d: it must be between 1 and 100 (the total number of tries)", n)
	}
	return ""
}

func timeoutProblem(d Duration) string {
	if d <= 0 {
		return fmt.Sprintf("timeout is %s: it must be more than 0 (leave timeout out for no limit)", time.Duration(d))
	}
	return ""
}

func maxRunsProblem(n int) string {
	if n < 1 {
		return fmt.Sprintf("max_runs is %d: it must be at least 1", n)
	}
	return ""
}

func strategyProblem(s string) string {
	if !slices.Contains(strategies, s) {
		return fmt.Sprintf("unknown strategy %q (strategies are: %s)", s, strings.Join(strategies, ", "))
	}
	return ""
}

func whenProblem(s string) string {
	if strings.TrimSpace(s) == "" {
		return "when is empty: write a condition such as 'params.region == \"US\"', or remove it"
	}
	return ""
}

func exprProblem(param, s string) string {
	if strings.TrimSpace(s) == "" {
		return fmt.Sprintf("the expression is empty: write a CEL expression such as params.%s, or remove %s", param, param)
	}
	return ""
}

func catchupProblem(s string) string {
	if !slices.Contains(catchups, s) {
		return fmt.Sprintf("unknown catchup %q (catchup is one of: none, last, all; last is the default)", s)
	}
	return ""
}

func catchupMaxProblem(n int) string {
	if n < 1 || n > MaxCatchup {
		return fmt.Sprintf("catchup_max is %d: it must be between 1 and %d (leave it out for 10)", n, MaxCatchup)
	}
	return ""
}

// joinKeysMissing says what a join without join keys lacks.
const joinKeysMissing = "a join needs join_keys: the params whose values must be equal in every signal joined, such as join_keys: [date]"

// ParseCron reads a cron trigger's schedule: five fields, a descriptor such
// as @hourly, or @every with a duration in the form every file reads (so
// "@every 7d" works as "7d" does in a timeout).
func ParseCron(s string) (cron.Schedule, error) {
	if every, ok := strings.CutPrefix(s, "@every "); ok {
		d, err := dur.Parse(strings.TrimSpace(every))
		if err != nil {
			return nil, err
		}
		return cron.Every(d), nil
	}
	return cron.NewParser(cronSpec).Parse(s)
}

func cronProblem(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return `cron is empty: write a schedule such as "0 2 * * *" or "@hourly"`
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return "set the time zone with the trigger's timezone key, not inside the schedule"
	}
	if every, ok := strings.CutPrefix(s, "@every "); ok {
		if d, err := dur.Parse(strings.TrimSpace(every)); err == nil && d < time.Second {
			return fmt.Sprintf("@every %s is too often: the shortest interval is 1s", every)
		}
	}
	if _, err := ParseCron(s); err != nil {
		return fmt.Sprintf("invalid schedule %q: %v (write 5 fields: minute hour day-of-month month day-of-week, or a descriptor such as @hourly or @every 5m)", s, err)
	}
	return ""
}

func timezoneProblem(s string) string {
	if s == "" {
		return "timezone is empty: name a zone such as UTC or Europe/Paris, or remove it (UTC)"
	}
	if _, err := time.LoadLocation(s); err != nil {
		return fmt.Sprintf("unknown time zone %q: use an IANA name such as UTC or America/New_York", s)
	}
	return ""
}

func statusProblem(s string) string {
	if !slices.Contains(finishStatuses, s) {
		return fmt.Sprintf("unknown status %q (on_finish statuses are: %s)", s, strings.Join(finishStatuses, ", "))
	}
	return ""
}

func artifactProblem(name string) string {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\x00\\") ||
		path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Sprintf("%q is not a valid artifact name: write a relative path without . or .. parts, such as items.json or start/items.json", name)
	}
	return ""
}

func envNameProblem(name string) string {
	switch {
	case !envNameRE.MatchString(name):
		return fmt.Sprintf("%q is not a valid environment variable name: use letters, digits and _, not starting with a digit", name)
	case strings.HasPrefix(strings.ToUpper(name), "BATON_"):
		return fmt.Sprintf("%q starts with BATON_, which is reserved for the variables baton sets", name)
	}
	return ""
}

func (f *Flow) checkParams(l *errorList) {
	seen := map[string]bool{}
	for _, p := range f.Params {
		at := keyPath("params", p.Name)
		if m := paramNameProblem(p.Name); m != "" {
			l.add(at, "%s", m)
		}
		if seen[p.Name] {
			l.add(at, "param %q is declared twice", p.Name)
		}
		seen[p.Name] = true
		if m := typeProblem(p.Type); m != "" {
			l.add(at+".type", "%s", m)
		} else if p.Default != nil {
			if m := valueProblem(p.Type, p.Default); m != "" {
				l.add(at+".default", "%s", m)
			}
		}
	}
}

func (f *Flow) checkTriggers(l *errorList) {
	declared := make([]string, 0, len(f.Params))
	for _, p := range f.Params {
		declared = append(declared, p.Name)
	}
	for i, t := range f.Triggers {
		at := indexPath("triggers", i)
		kinds := 0
		for _, set := range []bool{t.Signal != "", len(t.Signals) > 0, t.OnFinish != nil, t.Cron != ""} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds == 0:
			l.add(at, "a trigger needs one of signal, signals, on_finish or cron")
		case kinds > 1:
			l.add(at, "a trigger has exactly one of signal, signals, on_finish or cron: split it into %d triggers", kinds)
		}
		if t.Signal != "" {
			if m := nameProblem("signal", t.Signal); m != "" {
				l.add(at+".signal", "%s", m)
			}
		}
		checkJoin(l, at, t)
		if t.When != "" {
			if t.Signal == "" && len(t.Signals) == 0 {
				l.add(at+".when", "when only applies to a signal or join (signals) trigger")
			} else if m := whenProblem(t.When); m != "" {
				l.add(at+".when", "%s", m)
			}
		}
		if len(t.Params) > 0 {
			if t.Signal == "" && len(t.Signals) == 0 && t.OnFinish == nil {
				l.add(at+".params", "params only applies to a signal, join (signals) or on_finish trigger")
			}
			keys := make([]string, 0, len(t.Params))
			for k := range t.Params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				pp := keyPath(at+".params", k)
				switch {
				case f.Param(k) != nil:
				case len(declared) == 0:
					l.add(pp, "flow %q declares no param %q: declare it under params first", f.Name, k)
					continue
				default:
					l.add(pp, "flow %q declares no param %q (declared: %s)%s", f.Name, k, list(declared), didYouMean(k, declared))
					continue
				}
				if m := exprProblem(k, t.Params[k]); m != "" {
					l.add(pp, "%s", m)
				}
			}
		}
		if of := t.OnFinish; of != nil {
			if m := nameProblem("flow", of.Flow); m != "" {
				l.add(at+".on_finish.flow", "%s", m)
			}
			seen := map[string]bool{}
			for j, s := range of.Status {
				sp := indexPath(at+".on_finish.status", j)
				if m := statusProblem(s); m != "" {
					l.add(sp, "%s", m)
				} else if seen[s] {
					l.add(sp, "status %q is listed twice", s)
				}
				seen[s] = true
			}
		}
		if t.Cron != "" {
			if m := cronProblem(t.Cron); m != "" {
				l.add(at+".cron", "%s", m)
			}
		}
		if t.Timezone != "" {
			if t.Cron == "" {
				l.add(at+".timezone", "timezone only applies to a cron trigger")
			} else if m := timezoneProblem(t.Timezone); m != "" {
				l.add(at+".timezone", "%s", m)
			}
		}
		if t.Catchup != "" {
			if t.Cron == "" {
				l.add(at+".catchup", "catchup only applies to a cron trigger")
			} else if m := catchupProblem(t.Catchup); m != "" {
				l.add(at+".catchup", "%s", m)
			}
		}
		if t.CatchupMax != 0 {
			if m := catchupMaxProblem(t.CatchupMax); m != "" {
				l.add(at+".catchup_max", "%s", m)
			} else if t.Catchup != CatchupAll {
				l.add(at+".catchup_max", "catchup_max only applies with catchup: all")
			}
		}
	}
}

// checkJoin checks a join trigger's signals and join keys.
func checkJoin(l *errorList, at string, t Trigger) {
	if len(t.Signals) > 0 {
		if len(t.Signals) == 1 {
			l.add(at+".signals", "a join lists 2 or more signals: for a single signal, write signal: %s", t.Signals[0])
		}
		seen := map[string]bool{}
		for j, s := range t.Signals {
			sp := indexPath(at+".signals", j)
			if m := nameProblem("signal", s); m != "" {
				l.add(sp, "%s", m)
			} else if seen[s] {
				l.add(sp, "signal %q is listed twice in signals", s)
			}
			seen[s] = true
		}
		if len(t.JoinKeys) == 0 {
			l.add(at+".join_keys", "%s", joinKeysMissing)
		}
	}
	if len(t.JoinKeys) == 0 {
		return
	}
	if len(t.Signals) == 0 {
		l.add(at+".join_keys", "join_keys only applies to a join trigger (signals: [a, b])")
	}
	seen := map[string]bool{}
	for j, k := range t.JoinKeys {
		kp := indexPath(at+".join_keys", j)
		if m := paramNameProblem(k); m != "" {
			l.add(kp, "%s", m)
		} else if seen[k] {
			l.add(kp, "join key %q is listed twice", k)
		}
		seen[k] = true
	}
}

func (f *Flow) checkConcurrency(l *errorList) {
	c := f.Concurrency
	if c == nil {
		return
	}
	if c.MaxRuns != 0 {
		if m := maxRunsProblem(c.MaxRuns); m != "" {
			l.add("concurrency.max_runs", "%s", m)
		}
	}
	if c.Strategy != "" {
		if m := strategyProblem(c.Strategy); m != "" {
			l.add("concurrency.strategy", "%s", m)
		}
	}
}

func (f *Flow) checkSteps(l *errorList) {
	if len(f.Steps) == 0 {
		l.add("steps", "the flow has no steps: add at least one")
		return
	}
	before := len(*l)
	idx := make(map[string]int, len(f.Steps))
	var names []string
	for i, s := range f.Steps {
		at := indexPath("steps", i)
		if m := nameProblem("step", s.Name); m != "" {
			l.add(at+".name", "%s", m)
			continue
		}
		if j, dup := idx[s.Name]; dup {
			l.add(at+".name", "step %q is defined twice (first as steps[%d]): rename one", s.Name, j)
			continue
		}
		idx[s.Name] = i
		names = append(names, s.Name)
	}
	for i := range f.Steps {
		f.checkStep(l, i, idx, names)
	}
	f.checkCycles(l, idx)
	if len(*l) == before {
		// Scopes need known needs and no cycle.
		f.checkScopes(l)
	}
}

func (f *Flow) checkStep(l *errorList, i int, idx map[string]int, names []string) {
	s := &f.Steps[i]
	at := indexPath("steps", i)
	seen := map[string]bool{}
	for j, n := range s.Needs {
		np := indexPath(at+".needs", j)
		_, known := idx[n]
		switch {
		case n == s.Name:
			l.add(np, "step %q needs itself: remove it from needs", n)
		case !known:
			l.add(np, "unknown step %q (steps are: %s)%s", n, list(names), didYouMean(n, names))
		case seen[n]:
			l.add(np, "%q is listed twice in needs", n)
		}
		seen[n] = true
	}
	if strings.ContainsRune(s.Run, 0) {
		l.add(at+".run", "contains a NUL byte, which a shell command cannot hold")
	}
	if ts := s.TrainingSet; ts != nil {
		checkTrainingSet(l, at, s, ts)
	}
	if s.Foreach != nil {
		checkForeach(l, at+".foreach", s)
	}
	if s.Switch != nil {
		f.checkSwitch(l, at+".switch", s, idx, names)
	}
	if s.Subflow != nil {
		f.checkSubflow(l, at, s)
	}
	if s.Resources != nil {
		probs := resourcesProblems(s.Resources)
		for _, k := range []string{"cpu", "memory", "gpu"} {
			if m, ok := probs[k]; ok {
				l.add(at+".resources."+k, "%s", m)
			}
		}
	}
	lkeys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		lkeys = append(lkeys, k)
	}
	sort.Strings(lkeys)
	for _, k := range lkeys {
		if m := LabelProblem(k, s.Labels[k]); m != "" {
			l.add(keyPath(at+".labels", k), "%s", m)
		}
	}
	if s.Retry.Attempts != 0 {
		if m := attemptsProblem(s.Retry.Attempts); m != "" {
			l.add(at+".retry.attempts", "%s", m)
		}
	}
	if s.Retry.Backoff < 0 {
		l.add(at+".retry.backoff", "backoff is %s: it must not be negative", time.Duration(s.Retry.Backoff))
	}
	switch mb := s.Retry.MaxBackoff; {
	case mb < 0:
		l.add(at+".retry.max_backoff", "max_backoff is %s: it must not be negative", time.Duration(mb))
	case mb > 0 && s.Retry.Backoff > mb:
		l.add(at+".retry.max_backoff", "max_backoff (%s) is shorter than backoff (%s)", time.Duration(mb), time.Duration(s.Retry.Backoff))
	}
	if s.Timeout != 0 {
		if m := timeoutProblem(s.Timeout); m != "" {
			l.add(at+".timeout", "%s", m)
		}
	}
	if w := s.Wait; w != nil {
		if w.Signal == "" {
			l.add(at+".wait.signal", "wait names no signal: write wait: {signal: NAME}")
		} else if m := nameProblem("signal", w.Signal); m != "" {
			l.add(at+".wait.signal", "%s", m)
		}
		if w.When != "" {
			if m := whenProblem(w.When); m != "" {
				l.add(at+".wait.when", "%s", m)
			}
		}
		if w.Timeout != 0 {
			if m := timeoutProblem(w.Timeout); m != "" {
				l.add(at+".wait.timeout", "%s", m)
			}
		}
	}
	published := map[string]bool{}
	for j, sig := range s.Publish {
		pp := indexPath(at+".publish", j)
		if m := nameProblem("signal", sig); m != "" {
			l.add(pp, "%s", m)
		} else if published[sig] {
			l.add(pp, "signal %q is listed twice in publish", sig)
		}
		published[sig] = true
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ep := keyPath(at+".env", k)
		if m := envNameProblem(k); m != "" {
			l.add(ep, "%s", m)
		}
		if strings.ContainsRune(s.Env[k], 0) {
			l.add(ep, "the value contains a NUL byte, which an environment variable cannot hold")
		}
	}
}

func checkForeach(l *errorList, at string, s *Step) {
	fe := s.Foreach
	switch {
	case fe.Artifact != "" && len(fe.Items) > 0:
		l.add(at, "foreach takes an artifact name or inline items, not both")
	case fe.Artifact != "":
		name := fe.Artifact
		if m := artifactProblem(name); m != "" {
			l.add(at, "%s", m)
			return
		}
		if len(s.Needs) == 0 {
			l.add(at, "foreach reads artifact %q from an upstream step, but step %q has no needs: add the step that writes it to needs", name, s.Name)
			return
		}
		if step, file, ok := strings.Cut(name, "/"); ok {
			if !slices.Contains(s.Needs, step) {
				l.add(at, "foreach names step %q, which step %q does not need (needs: %s): write <step>/%s with one of them, or add %q to needs", step, s.Name, list(s.Needs), file, step)
			}
		} else if len(s.Needs) > 1 {
			l.add(at, "artifact %q could come from any of %s: write it as <step>/%s", name, list(s.Needs), name)
		}
	case len(fe.Items) == 0:
		l.add(at, "foreach is empty: name an upstream artifact that holds a JSON array, or list at least one item")
	default:
		for k, it := range fe.Items {
			if !json.Valid(it) {
				l.add(indexPath(at, k), "item is not valid JSON")
			}
		}
	}
}

// checkSwitch holds the rules of a switch: its cases lead to steps that
// need it, and every step that needs it is one of its cases.
func (f *Flow) checkSwitch(l *errorList, at string, s *Step, idx map[string]int, names []string) {
	sw := s.Switch
	if m := artifactProblem(sw.CaseArtifact()); m != "" {
		l.add(at+".on", "%s", m)
	}
	if len(sw.Cases) == 0 {
		l.add(at+".cases", "a switch needs cases: map each case its tasks may write to the step it leads to")
	}
	keys := make([]string, 0, len(sw.Cases))
	for k := range sw.Cases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cp, target := keyPath(at+".cases", k), sw.Cases[k]
		if strings.TrimSpace(k) != k || k == "" {
			l.add(cp, "case %q: a case is a non-empty name without surrounding space", k)
		}
		j, known := idx[target]
		switch {
		case known && f.LoopBody(s.Name, target) != nil:
			// A loop: checked below.
		case !known:
			l.add(cp, "case %q leads to unknown step %q (steps are: %s)%s", k, target, list(names), didYouMean(target, names))
		case !slices.Contains(f.Steps[j].Needs, s.Name):
			l.add(cp, "case %q leads to step %q, which does not need %q: add %q to its needs", k, target, s.Name, s.Name)
		case f.Steps[j].Join != nil && *f.Steps[j].Join:
			l.add(cp, "case %q leads to step %q, which joins: a case's step runs for each task that chose it; join after it", k, target)
		}
	}
	back := false
	for _, k := range keys {
		target := sw.Cases[k]
		body := f.LoopBody(s.Name, target)
		if body == nil {
			continue
		}
		back = true
		cp := keyPath(at+".cases", k)
		if sw.MaxIterations <= 0 {
			l.add(at+".max_iterations", "case %q leads back to step %q (a loop): set max_iterations, the most times the loop's steps may run", k, target)
		}
		for _, b := range body {
			bs := f.Step(b)
			switch {
			case bs.Foreach != nil:
				l.add(cp, "case %q loops over step %q, which fans out: a loop's steps run once per iteration (put the foreach in a subflow or after the loop)", k, b)
			case b != s.Name && bs.Switch != nil && loops(f, bs):
				l.add(cp, "case %q loops over step %q, which loops itself: loops do not nest", k, b)
			}
		}
	}
	if sw.MaxIterations < 0 {
		l.add(at+".max_iterations", "max_iterations is %d: it must be at least 1", sw.MaxIterations)
	} else if sw.MaxIterations > 0 && !back {
		l.add(at+".max_iterations", "max_iterations is set, but no case leads back to the switch step or a step before it")
	}
	targets := sw.Targets()
	for i := range f.Steps {
		o := &f.Steps[i]
		if slices.Contains(o.Needs, s.Name) && !slices.Contains(targets, o.Name) {
			l.add(indexPath("steps", i)+".needs", "step %q needs switch step %q but is none of its cases (%s): make it a case, or need a step after the switch",
				o.Name, s.Name, list(targets))
		}
	}
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// LabelProblem checks a placement label (a step's or a worker's): key and
// value of letters, digits and . _ / -, at most 63 long, no '=' or ','.
func LabelProblem(k, v string) string {
	if !labelRE.MatchString(k) {
		return fmt.Sprintf("label %q: a key is 1 to 63 letters, digits and . _ / - (starting with a letter or digit)", k)
	}
	if v != "" && !labelRE.MatchString(v) {
		return fmt.Sprintf("label %s=%q: a value is up to 63 letters, digits and . _ / - (starting with a letter or digit)", k, v)
	}
	return ""
}

// checkSubflow holds the rules of a subflow step.
func (f *Flow) checkSubflow(l *errorList, at string, s *Step) {
	sf := s.Subflow
	if s.Run != "" || s.TrainingSet != nil {
		l.add(at+".subflow", "a step runs a command, builds a training set or runs a subflow: keep one")
	}
	switch {
	case sf.Flow == "":
		l.add(at+".subflow.flow", "name the registered flow the step runs")
	case nameProblem("flow", sf.Flow) != "":
		l.add(at+".subflow.flow", "%s", nameProblem("flow", sf.Flow))
	case sf.Flow == f.Name:
		l.add(at+".subflow.flow", "flow %s runs itself as a subflow: that never ends", f.Name)
	}
	keys := make([]string, 0, len(sf.Params))
	for k := range sf.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pp := keyPath(at+".subflow.params", k)
		if m := paramNameProblem(k); m != "" {
			l.add(pp, "%s", m)
		}
		ref, ok := SubflowRef(sf.Params[k])
		if !ok {
			continue
		}
		switch {
		case ref.Kind == "param" && f.Param(ref.Name) == nil:
			l.add(pp, "%s: flow %s has no param %q", sf.Params[k], f.Name, ref.Name)
		case ref.Kind == "item" && s.Foreach == nil:
			l.add(pp, "${item}: step %s is not a foreach step", s.Name)
		case ref.Kind == "input" && !slices.Contains(s.Needs, ref.Step):
			l.add(pp, "%s: step %s does not need %q: add it to needs", sf.Params[k], s.Name, ref.Step)
		case ref.Kind == "":
			l.add(pp, "%s: write ${param.NAME}, ${item} or ${input.STEP/NAME}", sf.Params[k])
		}
	}
}

// SubflowValue is a reference in a subflow's param value: Kind is
// "param" (Name), "item" or "input" (Step, Name); "" for a value that
// looks like a reference but is none of them.
type SubflowValue struct {
	Kind, Step, Name string
}

// SubflowRef parses v as a reference; ok is false for plain text.
func SubflowRef(v string) (SubflowValue, bool) {
	inner, ok := strings.CutPrefix(v, "${")
	if !ok {
		return SubflowValue{}, false
	}
	inner, ok = strings.CutSuffix(inner, "}")
	if !ok {
		return SubflowValue{}, true
	}
	switch {
	case inner == "item":
		return SubflowValue{Kind: "item"}, true
	case strings.HasPrefix(inner, "param."):
		return SubflowValue{Kind: "param", Name: inner[len("param."):]}, true
	case strings.HasPrefix(inner, "input."):
		step, name, ok := strings.Cut(inner[len("input."):], "/")
		if !ok || step == "" || name == "" {
			return SubflowValue{}, true
		}
		return SubflowValue{Kind: "input", Step: step, Name: name}, true
	}
	return SubflowValue{}, true
}

// loops reports whether switch step s has a case leading back.
func loops(f *Flow, s *Step) bool {
	for _, t := range s.Switch.Cases {
		if f.LoopBody(s.Name, t) != nil {
			return true
		}
	}
	return false
}

// checkCycles reports each cycle through needs, written in run order: in
// "a -> b", b needs a.
func (f *Flow) checkCycles(l *errorList, idx map[string]int) {
	const (
		unseen = iota
		onStack
		finished
	)
	state := make([]uint8, len(f.Steps))
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = onStack
		stack = append(stack, i)
		for k, n := range f.Steps[i].Needs {
			j, ok := idx[n]
			if !ok || j == i || slices.Contains(f.Steps[i].Needs[:k], n) {
				continue // reported as unknown, self-need or duplicate
			}
			switch state[j] {
			case unseen:
				visit(j)
			case onStack:
				// stack from j: each step needs the next, and i needs j.
				k := slices.Index(stack, j)
				cyc := []string{f.Steps[j].Name}
				for m := len(stack) - 1; m > k; m-- {
					cyc = append(cyc, f.Steps[stack[m]].Name)
				}
				cyc = append(cyc, f.Steps[j].Name)
				// Point at j's need that closes the loop.
				closer := f.Steps[stack[k+1]].Name
				field := indexPath(indexPath("steps", j)+".needs", slices.Index(f.Steps[j].Needs, closer))
				l.add(field, "cycle: %s (each step needs the one before it): remove one of these needs", strings.Join(cyc, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = finished
	}
	for i := range f.Steps {
		if j, ok := idx[f.Steps[i].Name]; ok && j == i && state[i] == unseen {
			visit(i)
		}
	}
}

func (f *Flow) checkSignals(l *errorList) {
	first := map[string]int{}
	for i, sg := range f.Signals {
		at := indexPath("signals", i)
		if m := nameProblem("signal", sg.Name); m != "" {
			l.add(at+".name", "%s", m)
		} else if j, dup := first[sg.Name]; dup {
			l.add(at+".name", "signal %q is declared twice (first as signals[%d])", sg.Name, j)
		} else {
			first[sg.Name] = i
		}
		seen := map[string]bool{}
		for _, p := range sg.Params {
			pp := keyPath(at+".params", p.Name)
			if m := paramNameProblem(p.Name); m != "" {
				l.add(pp, "%s", m)
			} else if seen[p.Name] {
				l.add(pp, "param %q is declared twice", p.Name)
			}
			seen[p.Name] = true
			if m := typeProblem(p.Type); m != "" {
				l.add(pp+".type", "%s", m)
			}
		}
	}
}

// list names things in a message, shortening long lists.
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	const show = 15
	if len(names) > show {
		return strings.Join(names[:show], ", ") + fmt.Sprintf(", and %d more", len(names)-show)
	}
	return strings.Join(names, ", ")
}

// didYouMean suggests the candidate closest to s when one is close enough to
// be a likely typo.
func didYouMean(s string, candidates []string) string {
	limit := min(3, max(1, len(s)/2)) + 1 // distances below this look like typos
	best, bestD := "", limit
	for _, c := range candidates {
		if d := editDistance(s, c, limit); d < bestD && c != s {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit (long inputs are not worth comparing).
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

// checkTrainingSet checks a training_set step: exactly one of run and
// training_set, safe relative paths, and an output the batch path writes.
func checkTrainingSet(l *errorList, at string, s *Step, ts *TrainingSet) {
	p := at + ".training_set"
	if s.Run != "" {
		l.add(p, "a step either runs a command or builds a training set: remove run or training_set")
	}
	if s.Foreach != nil {
		l.add(at+".foreach", "a training_set step is not a foreach: the training set covers every label row")
	}
	switch {
	case ts.Labels == "":
		l.add(p+".labels", "labels is required: a CSV in the flow's folder, or STEP/NAME of an upstream artifact")
	case strings.HasPrefix(ts.Labels, "/") || slices.Contains(strings.Split(filepath.ToSlash(ts.Labels), "/"), ".."):
		l.add(p+".labels", "%q: use a path inside the flow's folder (no .. and not absolute)", ts.Labels)
	}
	ext := strings.ToLower(filepath.Ext(ts.Out))
	switch {
	case ts.Out == "":
		l.add(p+".out", "out is required: the artifact name, such as train.parquet or train.csv")
	case ext != ".csv" && ext != ".parquet":
		l.add(p+".out", "%q: the output is .csv or .parquet", ts.Out)
	case strings.HasPrefix(ts.Out, "/") || slices.Contains(strings.Split(ts.Out, "/"), ".."):
		l.add(p+".out", "%q: an artifact name is a relative path without ..", ts.Out)
	}
	for j, f := range ts.Features {
		if !paramNameRE.MatchString(f) {
			l.add(indexPath(p+".features", j), "%q is not a feature name", f)
		}
	}
}
