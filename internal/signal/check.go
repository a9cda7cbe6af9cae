package signal

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/baton-ml/baton/internal/flow"
)

// FlowCheck is the rule a flow's signal references must pass when it is
// applied: every signal it publishes, triggers on or waits for has a
// contract (here or declared in the same file), join keys are params of
// every joined signal, and every CEL expression compiles.
func (c Contracts) FlowCheck() flow.Check {
	return func(f *flow.Flow) flow.Errors {
		all := c.With(f.Signals)
		var errs flow.Errors
		add := func(field, format string, args ...any) {
			errs = append(errs, &flow.Error{Field: field, Msg: fmt.Sprintf(format, args...)})
		}
		known := func(field, name string) bool {
			if _, err := all.contract(name); err != nil {
				add(field, "%s", err.(*Error).Msg)
				return false
			}
			return true
		}
		compile := func(field, expr string, wantBool bool) {
			if expr == "" {
				return
			}
			if _, err := Compile(expr, wantBool); err != nil {
				add(field, "%v", err)
			}
		}
		for i, s := range f.Steps {
			at := "steps[" + strconv.Itoa(i) + "]"
			for j, p := range s.Publish {
				known(at+".publish["+strconv.Itoa(j)+"]", p)
			}
			if w := s.Wait; w != nil {
				known(at+".wait.signal", w.Signal)
				compile(at+".wait.when", w.When, true)
			}
		}
		for i, t := range f.Triggers {
			at := "triggers[" + strconv.Itoa(i) + "]"
			if t.Signal != "" {
				known(at+".signal", t.Signal)
			}
			for j, name := range t.Signals {
				if !known(at+".signals["+strconv.Itoa(j)+"]", name) {
					continue
				}
				for _, k := range t.JoinKeys {
					if !slices.ContainsFunc(all[name].Params, func(p flow.SignalParam) bool { return p.Name == k }) {
						add(at+".join_keys", "join key %q is not a param of signal %s", k, name)
					}
				}
			}
			compile(at+".when", t.When, true)
			for name, expr := range t.Params {
				compile(at+".params."+name, expr, false)
			}
		}
		return errs
	}
}
