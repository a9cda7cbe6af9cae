package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// SignalsCursor names the store cursor of the last signal evaluated;
// finishCursor the last run event.
const SignalsCursor = "signals"
const finishCursor = "run_events"

func (o *Orchestrator) signalLoop(ctx context.Context) {
	o.every(ctx, o.wakeSignals, o.evalSignals, "evaluate signals")
}

func (o *Orchestrator) finishLoop(ctx context.Context) {
	o.every(ctx, o.wakeFinish, o.evalFinished, "evaluate finished runs")
}

// evalSignals fires the triggers of every signal published since the
// cursor. Each firing has a unique key, so evaluating a signal twice (a
// crash between firing and moving the cursor) starts nothing twice.
// cursorEvery is how many signals are fired between cursor writes.
const cursorEvery = 50

func (o *Orchestrator) evalSignals(ctx context.Context) error {
	for {
		cur, err := o.st.Cursor(ctx, SignalsCursor)
		if err != nil {
			return err
		}
		sigs, err := o.st.Signals(ctx, store.SignalFilter{AfterSeq: cur, Limit: 500})
		if err != nil {
			return err
		}
		if len(sigs) == 0 {
			return nil
		}
		// Definitions read after the signals: a flow applied before a
		// signal was published is always among its subscribers.
		d, err := o.current(ctx)
		if err != nil {
			return err
		}
		fired := false
		for i, sg := range sigs {
			n, err := o.fireSignal(ctx, d, sg)
			if err != nil {
				return fmt.Errorf("signal %s: %w", sg.ID, err)
			}
			fired = fired || n > 0
			// The cursor moves every cursorEvery signals, not once a
			// batch: a leader killed mid-batch leaves its successor that
			// few to look at again (their firings are unique, so looking
			// again starts nothing twice, but it costs a query each).
			if (i+1)%cursorEvery == 0 || i == len(sigs)-1 {
				if err := o.st.SetCursor(ctx, SignalsCursor, sg.Seq); err != nil {
					return err
				}
			}
		}
		if fired {
			wake(o.wakeSched)
		}
		o.eng.NotifySignals()
		if len(sigs) < 500 {
			return nil
		}
	}
}

func (o *Orchestrator) fireSignal(ctx context.Context, d *defs, sg store.Signal) (int, error) {
	in := signal.Input{Signal: sg.Name, Params: sg.Params}
	fired := 0
	// Plain signal triggers of every subscriber fire in one transaction:
	// one signal may start a thousand runs.
	var batch []pendingFire
	for _, sb := range d.bySignal[sg.Name] {
		if sb.when != nil {
			ok, err := sb.when.Bool(in)
			if err != nil {
				o.log.Warn("trigger condition failed", "flow", sb.flow.fl.Name, "signal", sg.ID, "err", err)
				continue
			}
			if !ok {
				continue
			}
		}
		if sb.trig.Kind() == "join" {
			n, err := o.joinSignal(ctx, sb, sg)
			if err != nil {
				return fired, err
			}
			fired += n
			continue
		}
		key := fmt.Sprintf("signal:%s:%s:%d", sg.ID, sb.flow.fl.Name, sb.index)
		batch = append(batch, pendingFire{sb: sb, in: in, kind: store.TriggerSignal, detail: sg.Name + " " + sg.ID,
			cause: sg.CreatedAt, f: store.Fire{Key: key, Kind: "signal", Flow: sb.flow.fl.Name, SignalID: sg.ID, SourceRun: sg.Source.RunID}})
	}
	n, err := o.fireAll(ctx, batch)
	return fired + n, err
}

// joinSignal records sg as a part of a join trigger and fires once every
// signal of the join has arrived with the same join key values.
func (o *Orchestrator) joinSignal(ctx context.Context, sb *sub, sg store.Signal) (int, error) {
	keys := make(map[string]json.RawMessage, len(sb.trig.JoinKeys))
	for _, k := range sb.trig.JoinKeys {
		v, ok := sg.Params[k]
		if !ok {
			o.log.Warn("join signal lacks a join key", "flow", sb.flow.fl.Name, "signal", sg.ID, "key", k)
			return 0, nil
		}
		keys[k] = v
	}
	keyJSON, _ := json.Marshal(keys) // map keys sort: a canonical key
	parts, err := o.st.AddJoinPart(ctx, store.JoinPart{Flow: sb.flow.fl.Name, Trigger: sb.index, JoinKey: string(keyJSON),
		Signal: sg.Name, SignalID: sg.ID, Params: sg.Params})
	if err != nil {
		return 0, err
	}
	have := map[string]store.JoinPart{}
	for _, p := range parts {
		have[p.Signal] = p
	}
	merged := map[string]json.RawMessage{}
	var ids []string
	for _, name := range sb.trig.Signals {
		p, ok := have[name]
		if !ok {
			return 0, nil // still waiting for this one
		}
		for k, v := range p.Params {
			merged[k] = v
		}
		ids = append(ids, p.SignalID)
	}
	sort.Strings(ids)
	key := fmt.Sprintf("join:%s:%d:%s:%s", sb.flow.fl.Name, sb.index, keyJSON, strings.Join(ids, ","))
	f := store.Fire{Key: key, Kind: "join", Flow: sb.flow.fl.Name, SignalID: sg.ID, SourceRun: sg.Source.RunID}
	in := signal.Input{Signal: sg.Name, Params: merged}
	clear := &store.JoinPart{Flow: sb.flow.fl.Name, Trigger: sb.index, JoinKey: string(keyJSON)}
	created, err := o.fire(ctx, sb, f, in, store.TriggerJoin, strings.Join(sb.trig.Signals, "+")+" "+strings.Join(ids, ","), sg.CreatedAt, clear)
	if created {
		return 1, err
	}
	return 0, err
}

// pendingFire is a firing about to be recorded.
type pendingFire struct {
	sb     *sub
	f      store.Fire
	in     signal.Input
	kind   string
	detail string
	cause  time.Time
	join   *store.JoinPart
}

// fireAll records firings and creates their runs in one transaction. A run
// whose params cannot be made is still recorded, as failed with the
// reason, so the firing is visible. It returns how many runs it created.
func (o *Orchestrator) fireAll(ctx context.Context, ps []pendingFire) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	fs := make([]store.Firing, len(ps))
	for i, p := range ps {
		nr := store.NewRun{Flow: p.sb.flow.fl.Name, FlowVersion: p.sb.flow.version.Version, Trigger: p.kind, TriggerDetail: p.detail}
		params, err := p.sb.runParams(p.in)
		if err != nil {
			nr.FailWith = fmt.Sprintf("trigger %d (%s): %v", p.sb.index, p.kind, err)
		}
		nr.Params = params
		fs[i] = store.Firing{Fire: p.f, Run: nr, Join: p.join}
	}
	res, err := o.st.FireRuns(ctx, fs)
	if err != nil {
		return 0, err
	}
	created := 0
	for i, r := range res {
		if !r.Created {
			continue
		}
		created++
		o.m.Fired(ps[i].kind)
		if r.Run.Status == store.RunPending {
			o.noteCause(r.Run.ID, ps[i].cause)
		}
		o.log.Debug("trigger fired", "flow", r.Run.Flow, "run", r.Run.ID, "trigger", ps[i].kind, "detail", ps[i].detail)
	}
	if created > 0 {
		wake(o.wakeSched)
	}
	return created, nil
}

// fire records one firing.
func (o *Orchestrator) fire(ctx context.Context, sb *sub, f store.Fire, in signal.Input, kind, detail string,
	cause time.Time, join *store.JoinPart) (bool, error) {
	n, err := o.fireAll(ctx, []pendingFire{{sb: sb, f: f, in: in, kind: kind, detail: detail, cause: cause, join: join}})
	return n == 1, err
}

// evalFinished fires the on_finish triggers of runs that ended since the
// cursor, and keeps strict_sequential flows' blocks.
func (o *Orchestrator) evalFinished(ctx context.Context) error {
	for {
		cur, err := o.st.Cursor(ctx, finishCursor)
		if err != nil {
			return err
		}
		evs, err := o.st.RunEvents(ctx, cur, 500)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		d, err := o.current(ctx)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := o.finished(ctx, d, ev); err != nil {
				return fmt.Errorf("run %d: %w", ev.RunID, err)
			}
		}
		if err := o.st.SetCursor(ctx, finishCursor, evs[len(evs)-1].Seq); err != nil {
			return err
		}
		wake(o.wakeSched)
		if len(evs) < 500 {
			return nil
		}
	}
}

func (o *Orchestrator) finished(ctx context.Context, d *defs, ev store.RunEvent) error {
	o.m.RunFinished(ev.Status)
	// Blocks are set when a run this process executed fails (sched.go);
	// a success anywhere lifts them. Setting them here too could undo an
	// unblock that came between the failure and this event.
	if ev.Status == store.RunSucceeded {
		if err := o.strictBlock(ctx, ev.Flow, ev.RunID, ev.Status); err != nil {
			return err
		}
	}
	subs := d.byFinish[ev.Flow]
	if len(subs) == 0 {
		return nil
	}
	run, err := o.st.Run(ctx, ev.RunID)
	if err != nil {
		return err
	}
	in := signal.Input{Params: run.Params, Run: map[string]any{"id": run.ID, "flow": run.Flow, "status": string(run.Status)}}
	for _, sb := range subs {
		want := sb.trig.OnFinish.Status
		if len(want) == 0 {
			want = []string{string(store.RunSucceeded)}
		}
		match := false
		for _, w := range want {
			match = match || w == string(ev.Status)
		}
		if !match {
			continue
		}
		key := fmt.Sprintf("finish:%d:%s:%d", ev.RunID, sb.flow.fl.Name, sb.index)
		f := store.Fire{Key: key, Kind: "on_finish", Flow: sb.flow.fl.Name, SourceRun: ev.RunID}
		if _, err := o.fire(ctx, sb, f, in, store.TriggerFinish, "run "+strconv.FormatInt(ev.RunID, 10)+" "+string(ev.Status), ev.CreatedAt, nil); err != nil {
			return err
		}
	}
	return nil
}
