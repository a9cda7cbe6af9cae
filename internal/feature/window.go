package feature

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/baton-ml/baton/internal/flow"
)

// What monitors read of the streaming path: a source's events between two
// times, and features as of one time for every key active in a window.
// Both read the event logs, not the online store: a log holds late events
// too, and every online store (Redis included) answers the same by the
// consistency the two paths keep.

// Events calls fn for every event of source whose time is in (from, to],
// in log order, with its fields in the source's FieldOrder; ev and its
// Vals are reused between calls.
func (e *Engine) Events(ctx context.Context, source string, from, to time.Time, fn func(ev *Event) error) error {
	src := e.Catalog().Sources[source]
	if src == nil {
		return flow.Errors{{Field: "source", Msg: fmt.Sprintf("unknown source %q; baton feature list shows the registered ones", source)}}
	}
	l, err := OpenLog(e.LogDir(), src)
	if err != nil {
		return err
	}
	defer l.Close()
	lo, hi := from.UnixMicro(), to.UnixMicro()
	n := 0
	err = l.Scan(func(ev *Event) error {
		if n++; n%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if ev.Time <= lo || ev.Time > hi {
			return nil
		}
		return fn(ev)
	})
	if err != nil {
		return fmt.Errorf("read the event log of %s: %w", source, err)
	}
	return ctx.Err()
}

// Snapshot is features as of one time, for a set of keys.
type Snapshot struct {
	At time.Time
	// Keys are the entity keys, sorted; each column's Values line up with
	// them.
	Keys    []string
	Columns []Column
}

// Snapshot computes feats as of at for every key with at least one event
// of the features' sources in (at − active, at]: the batch path's windows
// at one time (a value is what the online store answers for that key at
// at). The features must share one entity.
func (e *Engine) Snapshot(ctx context.Context, feats []*Feature, active time.Duration, at time.Time) (*Snapshot, error) {
	if len(feats) == 0 {
		return nil, flow.Errors{{Field: "features", Msg: "a snapshot needs at least one feature"}}
	}
	if active <= 0 {
		return nil, flow.Errors{{Field: "active", Msg: fmt.Sprintf("the activity window must be positive, not %s", active)}}
	}
	cat := e.Catalog()
	entity := ""
	for _, f := range feats {
		src := cat.Sources[f.Source]
		if src == nil {
			return nil, flow.Errors{{Field: "features", Msg: fmt.Sprintf("feature %s reads source %s, which is no longer defined", f.Name, f.Source)}}
		}
		if entity != "" && src.Entity != entity {
			return nil, flow.Errors{{Field: "features", Msg: fmt.Sprintf("feature %s is of entity %s, the others of %s: a snapshot is of one entity's keys", f.Name, src.Entity, entity)}}
		}
		entity = src.Entity
	}
	t := at.UnixMicro()
	need := neededFields(cat, feats)
	data := make(map[string]*sourceData, len(need))
	keyCol := make(map[string]int, len(need))
	activeKeys := map[string]struct{}{}
	for source, fields := range need {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The events the windows see at t, and those that make a key
		// active: whichever reaches further back.
		span := active
		for _, f := range feats {
			if f.Source == source {
				span = max(span, f.Window.D())
			}
		}
		d, err := loadSource(e.LogDir(), cat.Sources[source], fields, t-span.Microseconds(), t)
		if err != nil {
			return nil, err
		}
		since := t - active.Microseconds()
		for key, k := range d.keys {
			// A key's run is sorted by time: its last event is its newest.
			if d.times[d.order[d.start[k+1]-1]] > since {
				activeKeys[key] = struct{}{}
			}
		}
		data[source], keyCol[source] = d, 0
	}
	keys := make([]string, 0, len(activeKeys))
	for k := range activeKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	labels := &Labels{Header: []string{cat.KeyOf(cat.Sources[feats[0].Source])}, Rows: make([][]string, len(keys)), Times: make([]int64, len(keys))}
	for i := range keys {
		labels.Rows[i] = keys[i : i+1 : i+1]
		labels.Times[i] = t
	}
	cols, err := columns(ctx, cat, data, labels, feats, keyCol)
	if err != nil {
		return nil, err
	}
	return &Snapshot{At: at, Keys: keys, Columns: cols}, nil
}
