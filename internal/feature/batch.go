package feature

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/baton-ml/baton/internal/flow"
)

// Labels is a labels file: one row per (entity key, time) to compute
// features for, with any other columns carried through.
type Labels struct {
	Header []string
	Rows   [][]string
	// Times holds each row's label time (unix µs).
	Times   []int64
	TimeCol int
}

// ReadLabels reads a labels CSV. timeCol names the label-time column; empty
// picks "timestamp", then "ts", then "time". Bad rows are errors naming the
// line: a training set silently missing rows would be worse than none.
func ReadLabels(r io.Reader, file, timeCol string) (*Labels, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		return nil, flow.Errors{{File: file, Line: 1, Msg: "a labels file is CSV with a header: " + errMsg(err)}}
	}
	l := &Labels{Header: header, TimeCol: -1}
	cands := []string{timeCol}
	if timeCol == "" {
		cands = []string{"timestamp", "ts", "time"}
	}
	for _, c := range cands {
		if i := slices.Index(header, c); i >= 0 {
			l.TimeCol = i
			break
		}
	}
	if l.TimeCol < 0 {
		return nil, flow.Errors{{File: file, Line: 1, Field: "time", Msg: fmt.Sprintf("no label-time column %s in the header (%s); name it with time (--time on the command line)",
			strings.Join(cands, " or "), strings.Join(header, ","))}}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			return nil, flow.Errors{{File: file, Line: line, Msg: errMsg(err)}}
		}
		t, err := ParseTime(rec[l.TimeCol])
		if err != nil {
			return nil, flow.Errors{{File: file, Line: line, Field: header[l.TimeCol], Msg: err.Error()}}
		}
		l.Rows = append(l.Rows, rec)
		l.Times = append(l.Times, t)
	}
	return l, nil
}

func errMsg(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// sourceData is one source's events in columns, grouped by key and sorted
// by (time, log order) within a key: the batch path's working set.
type sourceData struct {
	src   *Source
	keys  map[string]int32
	times []int64
	vals  [][]Value // per needed field (by source field index), per event
	// order lists event indices grouped by key; start[k]..start[k+1] is
	// key k's run, sorted by time.
	order []int32
	start []int32
}

// loadSource reads a source's log into columns, keeping only fields and
// the events whose time is in (from, to].
func loadSource(dir string, src *Source, fields []int, from, to int64) (*sourceData, error) {
	l, err := OpenLog(dir, src)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	d := &sourceData{src: src, keys: map[string]int32{}, vals: make([][]Value, len(src.FieldOrder()))}
	var keyOf []int32
	err = l.Scan(func(ev *Event) error {
		if ev.Time <= from || ev.Time > to {
			return nil
		}
		k, ok := d.keys[ev.Key]
		if !ok {
			k = int32(len(d.keys))
			d.keys[ev.Key] = k
		}
		keyOf = append(keyOf, k)
		d.times = append(d.times, ev.Time)
		for _, fi := range fields {
			d.vals[fi] = append(d.vals[fi], ev.Vals[fi])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the event log of %s: %w", src.Name, err)
	}
	// Counting sort by key keeps log order within a key; a stable sort by
	// time then gives (time, seq) order.
	nk := len(d.keys)
	d.start = make([]int32, nk+1)
	for _, k := range keyOf {
		d.start[k+1]++
	}
	for i := 1; i <= nk; i++ {
		d.start[i] += d.start[i-1]
	}
	pos := slices.Clone(d.start[:nk])
	d.order = make([]int32, len(keyOf))
	for i, k := range keyOf {
		d.order[pos[k]] = int32(i)
		pos[k]++
	}
	for k := range nk {
		run := d.order[d.start[k]:d.start[k+1]]
		slices.SortStableFunc(run, func(a, b int32) int {
			switch ta, tb := d.times[a], d.times[b]; {
			case ta < tb:
				return -1
			case ta > tb:
				return 1
			}
			return 0
		})
	}
	return d, nil
}

// Column is one computed feature over every label row.
type Column struct {
	Feature *Feature
	Type    FieldType
	Values  []Value
}

// TrainingSet computes feats for every label row, point-in-time correct: a
// row at time t sees only events with t - window < time <= t. keyCols maps
// each entity to its key column in the labels (default: the entity's key
// field name).
func TrainingSet(ctx context.Context, cat *Catalog, logDir string, labels *Labels, feats []*Feature, keyCols map[string]string) ([]Column, error) {
	need := neededFields(cat, feats)
	keyCol := map[string]int{}
	for source := range need {
		src := cat.Sources[source]
		name := keyCols[src.Entity]
		if name == "" {
			name = cat.KeyOf(src)
		}
		i := slices.Index(labels.Header, name)
		if i < 0 {
			return nil, flow.Errors{{Field: "keys." + src.Entity, Msg: fmt.Sprintf("the labels have no column %q for entity %s; name it with keys: {%s: COLUMN} (--key %s=COLUMN on the command line)", name, src.Entity, src.Entity, src.Entity)}}
		}
		keyCol[source] = i
	}
	data := map[string]*sourceData{}
	for source, fields := range need {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := loadSource(logDir, cat.Sources[source], fields, math.MinInt64, math.MaxInt64)
		if err != nil {
			return nil, err
		}
		data[source] = d
	}
	return columns(ctx, cat, data, labels, feats, keyCol)
}

// neededFields maps each source of feats to the fields they aggregate
// (none for plain counts).
func neededFields(cat *Catalog, feats []*Feature) map[string][]int {
	need := map[string][]int{}
	for _, f := range feats {
		src := cat.Sources[f.Source]
		if fi := fieldIndex(f, src); fi >= 0 && !slices.Contains(need[f.Source], fi) {
			need[f.Source] = append(need[f.Source], fi)
		} else if need[f.Source] == nil {
			need[f.Source] = []int{}
		}
	}
	return need
}

// columns computes feats for every label row from the sources' loaded
// events: the sliding windows of the batch path, parallel across keys.
func columns(ctx context.Context, cat *Catalog, data map[string]*sourceData, labels *Labels, feats []*Feature, keyCol map[string]int) ([]Column, error) {
	// Label rows of each source's keys, sorted by time per key.
	type group struct {
		key  int32
		rows []int32
	}
	groups := map[string][]group{}
	for source, d := range data {
		byKey := map[int32][]int32{}
		kc := keyCol[source]
		for r, row := range labels.Rows {
			k, ok := d.keys[row[kc]]
			if !ok {
				k = -1 // no events at all: every window is empty
			}
			byKey[k] = append(byKey[k], int32(r))
		}
		gs := make([]group, 0, len(byKey))
		for k, rows := range byKey {
			slices.SortStableFunc(rows, func(a, b int32) int {
				switch ta, tb := labels.Times[a], labels.Times[b]; {
				case ta < tb:
					return -1
				case ta > tb:
					return 1
				}
				return 0
			})
			gs = append(gs, group{k, rows})
		}
		groups[source] = gs
	}
	cols := make([]Column, len(feats))
	type job struct{ fi, lo, hi int }
	var jobs []job
	for i, f := range feats {
		src := cat.Sources[f.Source]
		cols[i] = Column{Feature: f, Type: outType(f, src), Values: make([]Value, len(labels.Rows))}
		gs := groups[f.Source]
		for lo := 0; lo < len(gs); lo += 256 {
			jobs = append(jobs, job{i, lo, min(lo+256, len(gs))})
		}
	}
	var wg sync.WaitGroup
	next := make(chan job)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range next {
				f := feats[j.fi]
				d := data[f.Source]
				fx := fieldIndex(f, d.src)
				a := newAcc(f.Aggregate)
				for _, g := range groups[f.Source][j.lo:j.hi] {
					var run []int32
					if g.key >= 0 {
						run = d.order[d.start[g.key]:d.start[g.key+1]]
					}
					slide(a, f, fx, d, run, g.rows, labels.Times, cols[j.fi].Values)
				}
			}
		})
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	return cols, ctx.Err()
}

// slide runs the window over one key's events (run, sorted by time) for
// its label rows (sorted by time), writing each row's value.
func slide(a *acc, f *Feature, fx int, d *sourceData, run, rows []int32, times []int64, out []Value) {
	a.reset()
	w := f.Window.D().Microseconds()
	lo, hi := 0, 0
	val := func(e int32) (Value, bool) {
		if fx < 0 {
			return Value{}, true
		}
		v := d.vals[fx][e]
		return v, v.Kind != KindNull
	}
	for _, r := range rows {
		t := times[r]
		for hi < len(run) && d.times[run[hi]] <= t {
			v, ok := val(run[hi])
			a.add(hi, d.times[run[hi]], v, ok)
			hi++
		}
		for lo < hi && d.times[run[lo]] <= t-w {
			v, ok := val(run[lo])
			a.remove(lo, v, ok)
			lo++
		}
		out[r] = a.value()
	}
}
