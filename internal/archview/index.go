package archview

import (
	"maps"
	"slices"
	"strings"
)

// Use is one declared use of a signal by a flow: Step is set for a step
// that publishes or waits, How says which use it is.
type Use struct {
	Flow, Step, How string
}

func (u Use) String() string {
	s := "`" + u.Flow + "`"
	if u.Step != "" {
		s += " / " + u.Step
	}
	if u.How != "" && u.How != "publish" {
		s += " (" + u.How + ")"
	}
	return s
}

// signalIndex is who declares publishing and consuming each signal, read
// from the flows' steps and triggers (the flow model, not a new parser).
type signalIndex struct {
	pubs, subs map[string][]Use
}

func (s *Snapshot) signalIndex() signalIndex {
	ix := signalIndex{pubs: map[string][]Use{}, subs: map[string][]Use{}}
	for _, fd := range s.Flows {
		f := fd.Flow
		for _, st := range f.Steps {
			for _, sig := range st.Publish {
				ix.pubs[sig] = append(ix.pubs[sig], Use{Flow: f.Name, Step: st.Name, How: "publish"})
			}
			if st.Wait != nil {
				ix.subs[st.Wait.Signal] = append(ix.subs[st.Wait.Signal], Use{Flow: f.Name, Step: st.Name, How: "wait"})
			}
		}
		for _, t := range f.Triggers {
			if t.Signal != "" {
				ix.subs[t.Signal] = append(ix.subs[t.Signal], Use{Flow: f.Name, How: "trigger"})
			}
			for _, sig := range t.Signals {
				ix.subs[sig] = append(ix.subs[sig], Use{Flow: f.Name, How: "join"})
			}
		}
	}
	// Flows are sorted and steps keep file order; dedupe a flow that
	// subscribes twice (two triggers on one signal).
	for _, m := range []map[string][]Use{ix.pubs, ix.subs} {
		for k, us := range m {
			m[k] = slices.Compact(us)
		}
	}
	return ix
}

// names lists every signal named by a contract, a publisher, a subscriber
// or a recorded signal, sorted.
func (s *Snapshot) signalNames(ix signalIndex) []string {
	set := map[string]bool{}
	for n := range s.Contracts {
		set[n] = true
	}
	for _, m := range []map[string][]Use{ix.pubs, ix.subs} {
		for n := range m {
			set[n] = true
		}
	}
	for n := range s.Observed {
		set[n] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func joinUses(us []Use) string {
	if len(us) == 0 {
		return "—"
	}
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.String()
	}
	return strings.Join(parts, ", ")
}

// flowsOf lists the distinct flows of uses, sorted.
func flowsOf(us []Use) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Flow)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
