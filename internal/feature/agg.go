package feature

import (
	"math"
	"strconv"
)

// acc is a window aggregate that events enter (add) and, on the batch
// path's sliding window, leave (remove, then expire). Both paths use it, so
// they agree by construction on what each aggregate means; the tests check
// both against a brute-force reference.
type acc struct {
	agg string
	n   int     // non-null values in the window (events, for a plain count)
	sum float64 // and their sum
	// Monotonic deque of (index, value) for min and max: its front is the
	// extreme of the window.
	dq       []dqItem
	dqHead   int
	last     Value
	lastIdx  int
	lastTime int64
	distinct map[string]int
}

type dqItem struct {
	idx int
	v   float64
}

func newAcc(agg string) *acc {
	a := &acc{agg: agg, lastIdx: -1}
	if agg == DistinctCount {
		a.distinct = map[string]int{}
	}
	return a
}

func (a *acc) reset() {
	a.n, a.sum, a.dq, a.dqHead, a.last, a.lastIdx = 0, 0, a.dq[:0], 0, Value{}, -1
	if a.distinct != nil {
		clear(a.distinct)
	}
}

// add enters the event at index idx (indices increase in (time, seq)
// order) with value v of the aggregated field; counted says whether it
// counts (a plain count counts every event).
func (a *acc) add(idx int, t int64, v Value, counted bool) {
	if !counted {
		return
	}
	a.n++
	switch a.agg {
	case Sum, Avg:
		a.sum += v.Num
	case Min:
		for len(a.dq) > a.dqHead && a.dq[len(a.dq)-1].v >= v.Num {
			a.dq = a.dq[:len(a.dq)-1]
		}
		a.dq = append(a.dq, dqItem{idx, v.Num})
	case Max:
		for len(a.dq) > a.dqHead && a.dq[len(a.dq)-1].v <= v.Num {
			a.dq = a.dq[:len(a.dq)-1]
		}
		a.dq = append(a.dq, dqItem{idx, v.Num})
	case Last:
		a.last, a.lastIdx, a.lastTime = v, idx, t
	case DistinctCount:
		a.distinct[distinctKey(v)]++
	}
}

// remove takes the event at idx out of the window; events leave in the
// order they entered.
func (a *acc) remove(idx int, v Value, counted bool) {
	if !counted {
		return
	}
	a.n--
	switch a.agg {
	case Sum, Avg:
		a.sum -= v.Num
		if a.n == 0 {
			a.sum = 0 // no rounding residue in an empty window
		}
	case Min, Max:
		for a.dqHead < len(a.dq) && a.dq[a.dqHead].idx <= idx {
			a.dqHead++
		}
		if a.dqHead > 1024 && a.dqHead*2 > len(a.dq) {
			a.dq = append(a.dq[:0], a.dq[a.dqHead:]...)
			a.dqHead = 0
		}
	case Last:
		if a.lastIdx == idx {
			a.last, a.lastIdx = Value{}, -1
		}
	case DistinctCount:
		k := distinctKey(v)
		if a.distinct[k]--; a.distinct[k] <= 0 {
			delete(a.distinct, k)
		}
	}
}

func distinctKey(v Value) string {
	if v.Kind == KindStr {
		return "s" + v.Str
	}
	return "n" + strconv.FormatFloat(v.Num, 'g', -1, 64)
}

// value is the aggregate of the window: count and distinct_count are 0 on
// an empty window, the others null.
func (a *acc) value() Value {
	switch a.agg {
	case Count:
		return Value{Kind: KindNum, Num: float64(a.n)}
	case DistinctCount:
		return Value{Kind: KindNum, Num: float64(len(a.distinct))}
	}
	if a.n == 0 {
		return Value{}
	}
	switch a.agg {
	case Sum:
		return Value{Kind: KindNum, Num: a.sum}
	case Avg:
		return Value{Kind: KindNum, Num: a.sum / float64(a.n)}
	case Min, Max:
		return Value{Kind: KindNum, Num: a.dq[a.dqHead].v}
	case Last:
		return a.last
	}
	return Value{}
}

// fieldIndex returns the index of f's field in its source's field order, or
// -1 for a plain count.
func fieldIndex(f *Feature, src *Source) int {
	if f.Field == "" {
		return -1
	}
	for i, n := range src.FieldOrder() {
		if n == f.Field {
			return i
		}
	}
	return -1
}

// windowValue aggregates f over evs, sorted by (Time, Seq), for the window
// ending at t: events with t - window < Time <= t. It is the streaming
// path's read.
func windowValue(f *Feature, fi int, evs []Event, t int64) Value {
	from := t - f.Window.D().Microseconds()
	lo := searchTime(evs, from)
	a := newAcc(f.Aggregate)
	for i := lo; i < len(evs) && evs[i].Time <= t; i++ {
		v, counted := fieldOf(&evs[i], fi)
		a.add(i, evs[i].Time, v, counted)
	}
	return a.value()
}

func fieldOf(ev *Event, fi int) (Value, bool) {
	if fi < 0 {
		return Value{}, true
	}
	if fi >= len(ev.Vals) {
		// An event stored under an older layout (Redis keeps what it
		// holds across a change of the source's fields).
		return Value{}, false
	}
	v := ev.Vals[fi]
	return v, v.Kind != KindNull
}

// searchTime returns the first index whose Time is after t.
func searchTime(evs []Event, t int64) int {
	lo, hi := 0, len(evs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if evs[m].Time <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// JSON renders a value for output: null, a number, a bool (for a bool
// field's last value) or a string.
func (v Value) JSON(t FieldType) any {
	switch v.Kind {
	case KindNum:
		if t == Bool {
			return v.Num != 0
		}
		return v.Num
	case KindStr:
		return v.Str
	}
	return nil
}

// Equal says whether two computed values agree, allowing for the rounding
// of sums computed in different orders.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindNum:
		if v.Num == w.Num {
			return true
		}
		d := math.Abs(v.Num - w.Num)
		return d <= 1e-9*math.Max(math.Abs(v.Num), math.Abs(w.Num)) || d < 1e-9
	case KindStr:
		return v.Str == w.Str
	}
	return true
}

// outType is the type of a feature's values: last (and min and max) keep
// their field's type; counts, sums and averages are numbers whatever they
// count.
func outType(f *Feature, src *Source) FieldType {
	if f.Field == "" {
		return Float
	}
	switch f.Aggregate {
	case Last, Min, Max:
		if t := src.Fields[f.Field]; t != "" {
			return t
		}
	}
	return Float
}
