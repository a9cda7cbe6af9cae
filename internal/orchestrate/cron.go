package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// defaultCatchupMax caps how many missed ticks catchup: all fires.
const defaultCatchupMax = 10

// cronLoop fires cron triggers at their ticks. Each trigger's cursor holds
// the last tick it fired, so a restart neither fires a tick twice (the
// firing key is unique too) nor forgets the ticks it missed: those follow
// the trigger's catch-up policy.
func (o *Orchestrator) cronLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-o.wakeCron: // new definitions may bring earlier ticks
		}
		next, err := o.cronTick(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Error("cron", "err", err)
			next = o.opt.Now().Add(time.Second)
		}
		wait := time.Until(next)
		// Look again at least every second: flows applied meanwhile may
		// bring earlier ticks.
		wait = max(min(wait, time.Second), 0)
		timer.Reset(wait)
	}
}

// cronTick fires every tick that is due and returns when the next is.
func (o *Orchestrator) cronTick(ctx context.Context) (time.Time, error) {
	d, err := o.current(ctx)
	if err != nil {
		return o.opt.Now().Add(time.Second), err
	}
	now := o.opt.Now()
	next := now.Add(time.Minute)
	for _, cs := range d.crons {
		last, err := o.st.Cursor(ctx, cs.key)
		if err != nil {
			return next, err
		}
		if last == 0 {
			// A new trigger starts from now: no catch-up from the epoch.
			last = now.Unix()
			if err := o.st.SetCursor(ctx, cs.key, last); err != nil {
				return next, err
			}
		}
		all := ticks(cs, time.Unix(last, 0), now)
		for _, tick := range dueTicks(cs, all, o.upSince) {
			if err := o.fireCron(ctx, cs, tick, now); err != nil {
				return next, err
			}
		}
		if len(all) > 0 {
			if err := o.st.SetCursor(ctx, cs.key, all[len(all)-1].Unix()); err != nil {
				return next, err
			}
			wake(o.wakeSched)
		}
		if n := cs.sched.Next(now.In(cs.loc)); n.Before(next) {
			next = n
		}
	}
	return next, nil
}

// maxTicks bounds the ticks looked at after a long downtime.
const maxTicks = 100000

// ticks lists the schedule's ticks in (after, until], at most maxTicks
// (the latest ones).
func ticks(cs *cronSub, after, until time.Time) []time.Time {
	var out []time.Time
	for t := cs.sched.Next(after.In(cs.loc)); !t.IsZero() && !t.After(until); t = cs.sched.Next(t) {
		out = append(out, t)
		if len(out) > maxTicks {
			out = out[1:]
		}
	}
	return out
}

// dueTicks picks the ticks to fire among those in (cursor, now]: every
// tick since the server came up, and of the ticks missed while no server
// was up what the trigger's catch-up policy says: none, the latest (last,
// the default), or all of them up to catchup_max (the latest ones).
func dueTicks(cs *cronSub, all []time.Time, upSince time.Time) []time.Time {
	var missed, due []time.Time
	for _, t := range all {
		if t.Before(upSince) {
			missed = append(missed, t)
		} else {
			due = append(due, t)
		}
	}
	if len(missed) == 0 {
		return due
	}
	limit := cs.trig.CatchupMax
	if limit <= 0 {
		limit = defaultCatchupMax
	}
	switch cs.trig.Catchup {
	case flow.CatchupNone:
		missed = nil
	case flow.CatchupAll:
		if len(missed) > limit {
			missed = missed[len(missed)-limit:]
		}
	default:
		missed = missed[len(missed)-1:]
	}
	return append(missed, due...)
}

func (o *Orchestrator) fireCron(ctx context.Context, cs *cronSub, tick, now time.Time) error {
	key := fmt.Sprintf("%s:%d", cs.key, tick.Unix())
	f := store.Fire{Key: key, Kind: "cron", Flow: cs.flow.fl.Name}
	in := signal.Input{Params: map[string]json.RawMessage{}}
	created, err := o.fire(ctx, cs.sub, f, in, store.TriggerCron, tick.UTC().Format(time.RFC3339), tick, nil)
	if err != nil {
		return err
	}
	if created {
		o.m.CronLag(now.Sub(tick))
	}
	return nil
}
