package archview

import (
	"fmt"
	"slices"
	"strings"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/lineage"
)

func signalsView(s *Snapshot) string {
	var d doc
	ix := s.signalIndex()
	d.line("Publishers and subscribers are declared by the flows (step `publish`, `wait`, signal and join triggers); counts are the signals the store recorded.")
	if s.Capped {
		d.line("Counts stopped at the configured maximum of recorded signals; they are lower bounds.")
	}
	d.blank()
	var rows [][]string
	for _, name := range s.signalNames(ix) {
		contract := "no contract"
		params := ""
		if c, ok := s.Contracts[name]; ok {
			contract = "declared"
			params = contractParams(c)
		}
		obs := s.Observed[name]
		rows = append(rows, []string{code(name), contract, params, joinUses(ix.pubs[name]), joinUses(ix.subs[name]),
			fmt.Sprint(obs.Count), stamp(obs.Last)})
	}
	d.table([]string{"signal", "contract", "params", "published by", "subscribed by", "recorded", "last seen"}, rows)
	return d.String()
}

func contractParams(c flow.Signal) string {
	var parts []string
	for _, p := range c.Params {
		s := p.Name + ": " + string(p.Type)
		if p.Required {
			s += " (required)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func lineageView(s *Snapshot) string {
	var d doc
	ix := s.signalIndex()
	d.line("Declared graph: flows (boxes) publish signals (rounded) that trigger, join or wake other flows; dotted arrows are on_finish triggers.")
	d.blank()
	d.line("```mermaid")
	d.line("flowchart LR")
	for _, fd := range s.Flows {
		d.line("  %s[%s]", mid("f", fd.Flow.Name), mlabel(fd.Flow.Name))
	}
	for _, sig := range s.signalNames(ix) {
		if len(ix.pubs[sig]) == 0 && len(ix.subs[sig]) == 0 {
			continue
		}
		d.line("  %s([%s])", mid("sig", sig), mlabel(sig))
		for _, f := range flowsOf(ix.pubs[sig]) {
			d.line("  %s --> %s", mid("f", f), mid("sig", sig))
		}
		for _, u := range uniqueHow(ix.subs[sig]) {
			d.line("  %s -->|%s| %s", mid("sig", sig), u.How, mid("f", u.Flow))
		}
	}
	for _, fd := range s.Flows {
		for _, t := range fd.Flow.Triggers {
			if t.OnFinish != nil {
				d.line("  %s -.->|on_finish| %s", mid("f", t.OnFinish.Flow), mid("f", fd.Flow.Name))
			}
		}
	}
	d.line("```")
	d.blank()
	d.line("## Blast radius")
	d.blank()
	d.line("Flows downstream of each flow through signals and on_finish (`lineage.OfFlow`): what a failure or a bad output reaches. \"declared only\" paths never happened in the recorded runs; \"observed only\" paths happened but no flow declares them.")
	d.blank()
	var rows [][]string
	for _, fd := range s.Flows {
		reached, ok := s.Blast[fd.Flow.Name], s.HasRuns[fd.Flow.Name]
		var reach, diff []string
		if !ok {
			diff = append(diff, "no runs recorded")
		}
		for _, r := range reached.Flows {
			reach = append(reach, fmt.Sprintf("%s (depth %d)", r.Flow, r.Depth))
			if note := declObs(r); note != "" && ok {
				diff = append(diff, r.Flow+": "+note)
			}
		}
		rows = append(rows, []string{fd.Flow.Name, fmt.Sprint(len(reached.Flows)), strings.Join(reach, ", "), strings.Join(diff, "; ")})
	}
	d.table([]string{"flow", "downstream flows", "reached", "declared vs observed"}, rows)
	return d.String()
}

// declObs says how a reached flow's path was known.
func declObs(r lineage.Reached) string {
	switch {
	case r.Declared && !r.Observed:
		return "declared only"
	case !r.Declared && r.Observed:
		return "observed only"
	}
	return ""
}

// uniqueHow keeps one use per flow and kind, sorted by flow.
func uniqueHow(us []Use) []Use {
	out := make([]Use, 0, len(us))
	for _, u := range us {
		u.Step = ""
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b Use) int { return strings.Compare(a.Flow+"\x00"+a.How, b.Flow+"\x00"+b.How) })
	return out
}
