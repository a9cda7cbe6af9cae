package feature

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/baton-ml/baton/internal/flow"
)

// maxBackfillRows bounds a backfill's grid (keys × times): past that, ask
// for fewer keys or a coarser step rather than exhaust memory.
const maxBackfillRows = 50_000_000

// BackfillLabels makes the label rows of a backfill: every key of the
// features' entity that has events, at every time from..to (inclusive) in
// steps of every. The batch path then computes each feature as of each
// time, as a daily (or hourly) snapshot table.
func BackfillLabels(cat *Catalog, logDir string, feats []*Feature, from, to time.Time, every time.Duration) (*Labels, error) {
	if every <= 0 {
		return nil, flow.Errors{{Field: "every", Msg: "must be positive, such as 1h or 24h"}}
	}
	if to.Before(from) {
		return nil, flow.Errors{{Field: "to", Msg: fmt.Sprintf("%s is before from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))}}
	}
	entity := ""
	for _, f := range feats {
		e := cat.Sources[f.Source].Entity
		if entity != "" && e != entity {
			return nil, flow.Errors{{Field: "features", Msg: fmt.Sprintf("a backfill covers one entity's features; %s is about %s, not %s", f.Name, e, entity)}}
		}
		entity = e
	}
	keys := map[string]bool{}
	for _, f := range feats {
		l, err := OpenLog(logDir, cat.Sources[f.Source])
		if err != nil {
			return nil, err
		}
		err = l.Scan(func(ev *Event) error {
			keys[ev.Key] = true
			return nil
		})
		l.Close()
		if err != nil {
			return nil, err
		}
	}
	var times []int64
	for t := from; !t.After(to); t = t.Add(every) {
		times = append(times, t.UnixMicro())
	}
	if n := len(keys) * len(times); n > maxBackfillRows {
		return nil, flow.Errors{{Field: "every", Msg: fmt.Sprintf("%d keys × %d times is %d rows, over %d: use a coarser every or a shorter range", len(keys), len(times), n, maxBackfillRows)}}
	}
	ks := slices.Sorted(maps.Keys(keys))
	l := &Labels{Header: []string{cat.Entities[entity].Key, "ts"}, TimeCol: 1}
	for _, t := range times {
		ts := time.UnixMicro(t).UTC().Format(time.RFC3339Nano)
		for _, k := range ks {
			l.Rows = append(l.Rows, []string{k, ts})
			l.Times = append(l.Times, t)
		}
	}
	return l, nil
}
