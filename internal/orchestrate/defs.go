package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// defs is the orchestrator's compiled view of every registered flow's newest
// version and every contract. It is rebuilt when something is applied and
// swapped in whole, so the loops read a consistent snapshot without locks.
type defs struct {
	// version is the store's catalog version they were read at.
	version   int64
	flows     map[string]*flowDef
	bySignal  map[string][]*sub // signal and join triggers by signal name
	byFinish  map[string][]*sub // on_finish triggers by the flow they watch
	crons     []*cronSub
	contracts signal.Contracts
	// problems are triggers that could not be compiled (reported, skipped).
	problems []string
}

type flowDef struct {
	version store.FlowVersion
	fl      *flow.Flow
}

// sub is one trigger of one flow.
type sub struct {
	flow   *flowDef
	index  int
	trig   flow.Trigger
	when   *signal.Program
	params map[string]*signal.Program
}

type cronSub struct {
	*sub
	sched cron.Schedule
	loc   *time.Location
	// key names the trigger's cursor: a changed schedule starts afresh.
	key string
}

// loadDefs reads and compiles every flow's newest version, as of the
// catalog version given (read before: a flow applied meanwhile makes the
// next load read again).
func loadDefs(ctx context.Context, st Store, version int64) (*defs, error) {
	d := &defs{version: version, flows: map[string]*flowDef{}, bySignal: map[string][]*sub{}, byFinish: map[string][]*sub{}}
	var err error
	if d.contracts, err = signal.Load(ctx, st); err != nil {
		return nil, err
	}
	fs, err := st.Flows(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		v, err := st.FlowVersion(ctx, f.Name, 0)
		if err != nil {
			return nil, err
		}
		fl, err := flow.Stored(f.Name, v.Version, v.Spec)
		if err != nil {
			d.problems = append(d.problems, err.Error())
			continue
		}
		fd := &flowDef{version: v, fl: fl}
		d.flows[f.Name] = fd
		for i, t := range fl.Triggers {
			sb, err := compileSub(fd, i, t)
			if err != nil {
				d.problems = append(d.problems, fmt.Sprintf("flow %s trigger %d: %v", f.Name, i, err))
				continue
			}
			switch t.Kind() {
			case "signal":
				d.bySignal[t.Signal] = append(d.bySignal[t.Signal], sb)
			case "join":
				for _, name := range t.Signals {
					d.bySignal[name] = append(d.bySignal[name], sb)
				}
			case "on_finish":
				d.byFinish[t.OnFinish.Flow] = append(d.byFinish[t.OnFinish.Flow], sb)
			case "cron":
				cs, err := compileCron(sb)
				if err != nil {
					d.problems = append(d.problems, fmt.Sprintf("flow %s trigger %d: %v", f.Name, i, err))
					continue
				}
				d.crons = append(d.crons, cs)
			}
		}
	}
	for _, subs := range d.bySignal {
		sort.Slice(subs, func(i, j int) bool { return subs[i].flow.fl.Name < subs[j].flow.fl.Name })
	}
	return d, nil
}

func compileSub(fd *flowDef, i int, t flow.Trigger) (*sub, error) {
	sb := &sub{flow: fd, index: i, trig: t, params: map[string]*signal.Program{}}
	if t.When != "" {
		p, err := signal.Compile(t.When, true)
		if err != nil {
			return nil, err
		}
		sb.when = p
	}
	for name, expr := range t.Params {
		p, err := signal.Compile(expr, false)
		if err != nil {
			return nil, fmt.Errorf("params.%s: %w", name, err)
		}
		sb.params[name] = p
	}
	return sb, nil
}

func compileCron(sb *sub) (*cronSub, error) {
	sched, err := flow.ParseCron(sb.trig.Cron)
	if err != nil {
		return nil, err
	}
	loc := time.UTC
	if tz := sb.trig.Timezone; tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, err
		}
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s|%s", sb.trig.Cron, sb.trig.Timezone)
	key := fmt.Sprintf("cron:%s:%d:%x", sb.flow.fl.Name, sb.index, h.Sum32())
	return &cronSub{sub: sb, sched: sched, loc: loc, key: key}, nil
}

// runParams makes a triggered run's params: each declared param takes its
// mapping expression's value if the trigger maps it, else the signal (or
// source run) param of the same name, else its default; signal params the
// flow does not declare are left out. The values are then checked by the
// one rule of every run's params (flow.CheckParams: types, required).
func (sb *sub) runParams(in signal.Input) (map[string]json.RawMessage, error) {
	given := map[string]json.RawMessage{}
	for _, p := range sb.flow.fl.Params {
		if prog, ok := sb.params[p.Name]; ok {
			v, err := prog.Value(in)
			if err != nil {
				return nil, fmt.Errorf("param %s: %w", p.Name, err)
			}
			given[p.Name] = v
		} else if sv, ok := in.Params[p.Name]; ok {
			given[p.Name] = sv
		}
	}
	return sb.flow.fl.CheckParams(given)
}
