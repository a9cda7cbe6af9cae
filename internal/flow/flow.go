// Package flow defines baton's flow model: the parsed, validated form of a
// flow file (or of a flow built with the Go SDK) that the engine executes and
// the store versions.
package flow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/baton-ml/baton/internal/dur"
)

// Flow is a validated flow definition. It is plain data: it marshals to the
// canonical JSON that the store keeps with each flow version, and its Digest
// identifies the version.
type Flow struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Params      []Param      `json:"params,omitempty"`
	Triggers    []Trigger    `json:"triggers,omitempty"`
	Concurrency *Concurrency `json:"concurrency,omitempty"`
	Steps       []Step       `json:"steps"`
	// Signals holds signal contracts declared in the same file.
	Signals []Signal `json:"signals,omitempty"`
}

// ParamType is the type of a run parameter.
type ParamType string

// The parameter types a flow may declare.
const (
	String ParamType = "string"
	Int    ParamType = "int"
	Float  ParamType = "float"
	Bool   ParamType = "bool"
	JSON   ParamType = "json"
)

// Param is a declared run parameter. A parameter without a default is required.
type Param struct {
	Name        string    `json:"name"`
	Type        ParamType `json:"type"`
	Description string    `json:"description,omitempty"`
	// Default is the default value as canonical JSON (a JSON string for
	// string parameters); nil when the parameter is required.
	Default json.RawMessage `json:"default,omitempty"`
}

// Required reports whether a run must supply a value for p.
func (p Param) Required() bool { return p.Default == nil }

// Trigger starts runs of a flow without a person. Exactly one of Signal,
// Signals (a join), OnFinish or Cron is set. Triggers are only acted on by
// `baton server`.
type Trigger struct {
	// Signal starts a run for each published signal of that name for
	// which When (CEL over params, optional) is true.
	Signal string `json:"signal,omitempty"`
	// Signals with JoinKeys is a join: a run starts once every signal
	// listed has arrived with equal values of the JoinKeys params (e.g.
	// features_ready and labels_ready for the same date). When, if set,
	// filters each arriving signal.
	Signals  []string `json:"signals,omitempty"`
	JoinKeys []string `json:"join_keys,omitempty"`
	When     string   `json:"when,omitempty"`
	// Params maps run params to CEL expressions over the signal's params
	// (or, for a join, over the merged params). Without it, signal params
	// whose names match run params are passed as they are.
	Params   map[string]string `json:"params,omitempty"`
	OnFinish *OnFinish         `json:"on_finish,omitempty"`
	Cron     string            `json:"cron,omitempty"`
	Timezone string            `json:"timezone,omitempty"`
	// Catchup says what a server that was down when ticks were due does:
	// none (skip them), last (fire the latest once, the default) or all
	// (fire each, at most CatchupMax, default 10).
	Catchup    string `json:"catchup,omitempty"`
	CatchupMax int    `json:"catchup_max,omitempty"`
}

// Catch-up policies of cron triggers.
const (
	CatchupNone = "none"
	CatchupLast = "last"
	CatchupAll  = "all"
)

// Kind names the trigger's kind: signal, join, on_finish or cron.
func (t Trigger) Kind() string {
	switch {
	case t.Signal != "":
		return "signal"
	case len(t.Signals) > 0:
		return "join"
	case t.OnFinish != nil:
		return "on_finish"
	case t.Cron != "":
		return "cron"
	}
	return ""
}

// OnFinish triggers a run when a run of another flow ends with one of Status
// ("succeeded", "failed"); an empty Status means succeeded. Parse writes the
// default out.
type OnFinish struct {
	Flow   string   `json:"flow"`
	Status []string `json:"status,omitempty"`
}

// Concurrency limits how runs of one flow overlap. MaxRuns 0 means 1 and an
// empty Strategy means "sequential"; Parse writes the defaults out.
type Concurrency struct {
	MaxRuns  int    `json:"max_runs,omitempty"`
	Strategy string `json:"strategy,omitempty"`
}

// Step is one node of the DAG.
type Step struct {
	Name  string   `json:"name"`
	Needs []string `json:"needs,omitempty"`
	// Run is the shell command of a shell step, run with /bin/sh -c in the
	// flow's folder. Empty for in-process (Go SDK) steps.
	Run     string   `json:"run,omitempty"`
	Foreach *Foreach `json:"foreach,omitempty"`
	// Join says whether a step that needs steps in a foreach joins their
	// level (sees every task of it) or runs in it, once per task. Unset,
	// a step joins when what it needs of the deepest level is that
	// level's foreach step itself, and runs in the level otherwise (see
	// Scopes).
	Join  *bool `json:"join,omitempty"`
	Retry Retry `json:"retry,omitzero"`
	// Timeout bounds each attempt; zero means no limit.
	Timeout Duration `json:"timeout,omitempty"`
	Publish []string `json:"publish,omitempty"`
	// Env sets extra environment variables for the step's tasks.
	Env map[string]string `json:"env,omitempty"`
	// Wait holds the step until a signal arrives.
	Wait *Wait `json:"wait,omitempty"`
	// Switch makes the step choose which of its cases runs after it.
	Switch *Switch `json:"switch,omitempty"`
	// Subflow makes each task run another registered flow and wait for it.
	Subflow *Subflow `json:"subflow,omitempty"`
	// Resources each task needs of its worker, and Labels the worker must
	// carry (each key with that value), for tasks placed through the queue.
	Resources *Resources        `json:"resources,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// TrainingSet makes the step build a point-in-time-correct training
	// set from registered features instead of running a command.
	TrainingSet *TrainingSet `json:"training_set,omitempty"`
}

// TrainingSet is a step that builds a training set on the features' batch
// path, checks its quality gates (a blocked computation fails the task and
// publishes nothing) and stores the result as the artifact Out. If the
// step publishes features_ready, the task writes its params: the feature
// versions, the row count, the quality metrics and the run's date param.
type TrainingSet struct {
	// Labels is the labels CSV: "STEP/NAME" names an artifact of a step
	// this one needs, anything else is a file in the flow's folder.
	Labels string `json:"labels"`
	// Features to compute; empty means every registered feature.
	Features []string `json:"features,omitempty"`
	// Out is the artifact name, ending in .csv or .parquet.
	Out string `json:"out"`
	// Time names the labels' time column (default timestamp, ts or time).
	Time string `json:"time,omitempty"`
	// Keys maps an entity to its labels column when it is not the
	// entity's key name.
	Keys map[string]string `json:"keys,omitempty"`
}

// Wait holds a step, once what it needs has succeeded, until a signal named
// Signal for which When (CEL over params, optional) is true is published
// after the run started. With a Timeout the step fails if none comes in
// time. The tasks see the signal as BATON_SIGNAL_ID and BATON_SIGNAL_PARAMS.
type Wait struct {
	Signal  string   `json:"signal"`
	When    string   `json:"when,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}

// Switch picks, for each task of the step, the step that runs after it:
// the task writes a case name to its artifact On (text, surrounding space
// ignored) and Cases maps each case to a step that needs this one. The
// cases not taken are skipped, and so is what only they lead to; a step
// that needs several cases' steps (or other steps too) runs on the taken
// branch.
//
// A case may lead back, to the switch step itself or a step it comes
// after: a loop. The steps from there to the switch run again, each
// iteration's tasks kept (task N of a step in a loop is its iteration N),
// until a case leads on; MaxIterations bounds how often they run.
type Switch struct {
	// On names the artifact holding the case; "case" when empty.
	On            string            `json:"on,omitempty"`
	Cases         map[string]string `json:"cases"`
	MaxIterations int               `json:"max_iterations,omitempty"`
}

// CaseArtifact is the artifact a switch step's task names its case in.
func (sw *Switch) CaseArtifact() string {
	if sw.On == "" {
		return "case"
	}
	return sw.On
}

// LoopBody returns the steps a back case of switch step sw to step head
// runs again, in the flow's order: head and every step after it that the
// switch step comes after, the switch step last. Nil if head is not
// upstream of (or) the switch step.
func (f *Flow) LoopBody(sw, head string) []string {
	if sw == head {
		return []string{sw}
	}
	up := f.Upstream(sw)
	if !slices.Contains(up, head) {
		return nil
	}
	down := f.Downstream(head)
	var body []string
	for _, s := range f.TopoOrder() {
		if s.Name == head || (slices.Contains(down, s.Name) && slices.Contains(up, s.Name)) {
			body = append(body, s.Name)
		}
	}
	return append(body, sw)
}

// Upstream returns the names of the steps step comes after, directly or
// through other steps.
func (f *Flow) Upstream(step string) []string {
	reached := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		s := f.Step(n)
		if s == nil {
			return
		}
		for _, up := range s.Needs {
			if !reached[up] {
				reached[up] = true
				visit(up)
			}
		}
	}
	visit(step)
	var out []string
	for _, s := range f.TopoOrder() {
		if reached[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out
}

// Targets lists the steps the cases lead to, each once, sorted.
func (sw *Switch) Targets() []string {
	var out []string
	for _, t := range sw.Cases {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// Subflow runs flow Flow (its newest version when the task starts) as a
// child of the task and waits for it: the child's artifacts become the
// task's, as CHILD_STEP/NAME (CHILD_STEP/INDEX/NAME for its foreach
// tasks), and the task fails if the child does. Params maps the child's
// params to values: text as it is, or one of
//   - ${param.NAME}: the parent run's param NAME,
//   - ${item}: the foreach item (a string as is, anything else as JSON),
//   - ${input.STEP/NAME}: the text of artifact NAME of need STEP, as the
//     task sees it (at most 64 KiB, surrounding space trimmed).
//
// A whole value is one of these or text; nothing is substituted inside
// text.
type Subflow struct {
	Flow   string            `json:"flow"`
	Params map[string]string `json:"params,omitempty"`
}

// Foreach fans a step out into one task per item. Exactly one of Artifact or
// Items is set.
type Foreach struct {
	// Artifact names an artifact of an upstream step that holds a JSON
	// array: "name", or "step/name" to pick the upstream step.
	Artifact string `json:"artifact,omitempty"`
	// Items is an inline array.
	Items []json.RawMessage `json:"items,omitempty"`
}

// Retry says how many times a task is tried and how long to wait in between.
type Retry struct {
	// Attempts is the total number of tries, at least 1.
	Attempts int `json:"attempts,omitempty"`
	// Backoff is the wait before the second try; it doubles for each
	// further try, up to MaxBackoff.
	Backoff    Duration `json:"backoff,omitempty"`
	MaxBackoff Duration `json:"max_backoff,omitempty"`
}

// MaxAttempts returns the number of tries, treating zero as one.
func (r Retry) MaxAttempts() int {
	if r.Attempts < 1 {
		return 1
	}
	return r.Attempts
}

// DefaultMaxBackoff caps the exponential retry backoff when a step sets none.
const DefaultMaxBackoff = Duration(5 * time.Minute)

// Delay returns the wait before try number next (2-based: the wait before
// the second try is Backoff).
func (r Retry) Delay(next int) time.Duration {
	if next < 2 || r.Backoff <= 0 {
		return 0
	}
	limit := r.MaxBackoff
	if limit <= 0 {
		limit = DefaultMaxBackoff
	}
	d := time.Duration(r.Backoff)
	for i := 2; i < next; i++ {
		d *= 2
		if d >= time.Duration(limit) {
			return time.Duration(limit)
		}
	}
	return min(d, time.Duration(limit))
}

// Signal is a signal contract: the params a signal carries.
type Signal struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Params      []SignalParam `json:"params,omitempty"`
}

// SignalParam is one field of a signal contract.
type SignalParam struct {
	Name     string    `json:"name"`
	Type     ParamType `json:"type"`
	Required bool      `json:"required,omitempty"`
}

// Duration is a time.Duration that marshals as a Go duration string
// ("1m0s"). It reads every form dur.Parse reads ("7d" too); it keeps Go's
// form when written because a flow version is identified by the digest of
// its JSON, and a new form would make every stored flow "changed".
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := dur.Parse(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ContractsOnly reports whether the document declares signal contracts and
// nothing else (a signals.yaml file): it is not a flow and cannot run.
func (f *Flow) ContractsOnly() bool {
	return f.Name == "" && len(f.Steps) == 0 && len(f.Params) == 0 && len(f.Triggers) == 0 &&
		f.Concurrency == nil && len(f.Signals) > 0
}

// Step returns the step named name, or nil.
func (f *Flow) Step(name string) *Step {
	for i := range f.Steps {
		if f.Steps[i].Name == name {
			return &f.Steps[i]
		}
	}
	return nil
}

// Param returns the parameter named name, or nil.
func (f *Flow) Param(name string) *Param {
	for i := range f.Params {
		if f.Params[i].Name == name {
			return &f.Params[i]
		}
	}
	return nil
}

// Digest identifies the flow's content: equal definitions have equal digests,
// whatever their formatting or comments.
//
// It never fails: marshaling can only fail on a param default or foreach
// item that is not valid JSON, which Validate (and so Parse) rejects. For
// such an invalid flow the bad values are hashed as JSON strings instead.
func (f *Flow) Digest() string {
	b, err := json.Marshal(f)
	if err != nil {
		if b, err = json.Marshal(f.withValidJSON()); err != nil {
			b = []byte(err.Error()) // unreachable: every RawMessage is now valid
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// VersionDigest identifies a registered version of the flow: its
// definition, the folder its shell steps run in (the same YAML in another
// folder runs other scripts; empty for a version with a code snapshot,
// whose content stands for the folder) and code: the snapshot's digest
// (catalog), or for a Go SDK flow the code version its author declares.
func (f *Flow) VersionDigest(dir, code string) string {
	sum := sha256.Sum256([]byte(f.Digest() + "\x00" + dir + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

// withValidJSON returns a copy of f whose invalid JSON values are replaced
// by JSON strings holding their text.
func (f *Flow) withValidJSON() *Flow {
	fix := func(r json.RawMessage) json.RawMessage {
		if r == nil || json.Valid(r) {
			return r
		}
		q, _ := json.Marshal("invalid JSON: " + string(r))
		return q
	}
	g := *f
	g.Params = slices.Clone(f.Params)
	for i := range g.Params {
		g.Params[i].Default = fix(g.Params[i].Default)
	}
	g.Steps = slices.Clone(f.Steps)
	for i := range g.Steps {
		if fe := g.Steps[i].Foreach; fe != nil {
			c := *fe
			c.Items = slices.Clone(fe.Items)
			for j := range c.Items {
				c.Items[j] = fix(c.Items[j])
			}
			g.Steps[i].Foreach = &c
		}
	}
	return &g
}

// Downstream returns the names of the steps that depend on step, directly or
// through other steps, in the flow's order.
func (f *Flow) Downstream(step string) []string {
	reached := map[string]bool{step: true}
	var out []string
	// Steps are kept in topological order (Validate checks it is a DAG and
	// TopoOrder sorts), so one pass in that order suffices.
	for _, s := range f.TopoOrder() {
		for _, n := range s.Needs {
			if reached[n] && !reached[s.Name] {
				reached[s.Name] = true
				out = append(out, s.Name)
			}
		}
	}
	return out
}

// TopoOrder returns the steps ordered so each comes after everything it
// needs; ties keep file order. It assumes the flow is acyclic (Validate).
func (f *Flow) TopoOrder() []*Step {
	idx := make(map[string]int, len(f.Steps))
	for i := range f.Steps {
		idx[f.Steps[i].Name] = i
	}
	done := make([]bool, len(f.Steps))
	out := make([]*Step, 0, len(f.Steps))
	for len(out) < len(f.Steps) {
		progressed := false
		for i := range f.Steps {
			if done[i] {
				continue
			}
			ready := true
			for _, n := range f.Steps[i].Needs {
				if j, ok := idx[n]; ok && !done[j] {
					ready = false
					break
				}
			}
			if ready {
				done[i] = true
				out = append(out, &f.Steps[i])
				progressed = true
			}
		}
		if !progressed {
			break // a cycle; Validate reports it
		}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidName reports whether s may name a flow, a step or a signal.
func ValidName(s string) bool { return len(s) <= 100 && nameRE.MatchString(s) }

// Stored decodes the canonical JSON a flow version was registered with
// (store.FlowVersion.Spec). A spec that does not decode is the store's
// damage, named by flow and version, never a silently empty flow.
func Stored(name string, version int, spec json.RawMessage) (*Flow, error) {
	var f Flow
	if err := json.Unmarshal(spec, &f); err != nil {
		return nil, fmt.Errorf("flow %s version %d: its stored spec does not decode: %w", name, version, err)
	}
	return &f, nil
}
