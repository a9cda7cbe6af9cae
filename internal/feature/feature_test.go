package feature

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

const defsYAML = `entities:
  - name: member
    key: member_id
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {title_id: string, minutes: float, market: string}
features:
  - name: plays_1h
    source: plays
    aggregate: count
    window: 1h
  - name: minutes_24h
    source: plays
    aggregate: sum
    field: minutes
    window: 24h
    freshness_sla: 1s
    quality:
      - {check: not_null_rate, min: 0.5, action: block}
      - {check: range, min: 0, max: 1440, action: warn}
`

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	d, err := Parse("f.yaml", []byte(defsYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Features) != 2 || d.Features[1].Window.D() != 24*time.Hour || d.Features[1].FreshnessSLA.D() != time.Second {
		t.Fatalf("parsed: %+v", d.Features)
	}
	if got := d.Sources[0].FieldOrder(); !slices.Equal(got, []string{"market", "minutes", "title_id"}) {
		t.Fatalf("field order %v", got)
	}
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", strings.Replace(defsYAML, "    window: 1h\n", "    window: 1h\n    windwo: 2h\n", 1), `f.yaml:14:5: features[0].windwo: unknown field "windwo"`},
		{"bad aggregate", strings.Replace(defsYAML, "aggregate: count", "aggregate: median", 1), `f.yaml:12:16: features[0].aggregate: "median": use one of`},
		{"unknown source", strings.Replace(defsYAML, "    source: plays\n    aggregate: count", "    source: views\n    aggregate: count", 1), `features[0].source: unknown source "views"`},
		{"bad window", strings.Replace(defsYAML, "window: 1h", "window: soon", 1), `f.yaml:13:13: features[0].window: not a duration`},
		{"sum of a string", strings.Replace(defsYAML, "field: minutes", "field: market", 1), `features[1].field: sum of market: the field is a string`},
		{"bad gate", strings.Replace(defsYAML, "action: block", "action: panic", 1), `features[1].quality[0].action: "panic": use block or warn`},
		{"duplicate", strings.Replace(defsYAML, "name: minutes_24h", "name: plays_1h", 1), `feature "plays_1h" is declared twice`},
		{"bad field type", strings.Replace(defsYAML, "minutes: float", "minutes: decimal", 1), `type "decimal": use string, float, int or bool`},
		{"bad responds_to", strings.Replace(defsYAML, "    timestamp: ts\n", "    timestamp: ts\n    responds_to: [Home]\n", 1), `f.yaml:8:19: sources[0].responds_to[0]: endpoint name "Home": use lowercase`},
		{"responds_to twice", strings.Replace(defsYAML, "    timestamp: ts\n", "    timestamp: ts\n    responds_to: [home, home]\n", 1), `sources[0].responds_to[1]: endpoint "home" is listed twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("f.yaml", []byte(c.yaml))
			var fe flow.Errors
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want it to contain %q", err, c.want)
			}
			if fe[0].Line == 0 {
				t.Fatalf("no line in %v", err)
			}
		})
	}
}

func TestApplyVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	d, _ := Parse("f.yaml", []byte(defsYAML))
	out, err := Apply(ctx, st, "f.yaml", d)
	if err != nil || len(out) != 4 || !out[3].New || out[3].Version != 1 {
		t.Fatalf("first apply: %+v %v", out, err)
	}
	d2, _ := Parse("f.yaml", []byte(strings.Replace(defsYAML, "window: 1h", "window: 5m", 1)))
	out, _ = Apply(ctx, st, "f.yaml", d2)
	if out[2].Name != "plays_1h" || !out[2].New || out[2].Version != 2 || out[3].New {
		t.Fatalf("changed window: %+v", out)
	}
	cat, _ := Load(ctx, st)
	if cat.Features["plays_1h"].Version != 2 || cat.Features["plays_1h"].Window.D() != 5*time.Minute {
		t.Fatalf("catalog: %+v", cat.Features["plays_1h"])
	}
	// A features-only file may refer to registered sources.
	more, err := ParseWith("g.yaml", []byte("features:\n  - {name: last_market, source: plays, aggregate: last, field: market, window: 1h}\n"), cat.Defs())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, st, "g.yaml", more); err != nil {
		t.Fatalf("features-only apply: %v", err)
	}
}

// TestRespondsTo: a source's responds_to is registered and read back; it
// names endpoints that may not be applied yet. Sources that do not declare
// it keep their digest, so adding the field to baton bumped no version.
func TestRespondsTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	d, _ := Parse("f.yaml", []byte(defsYAML))
	if _, err := Apply(ctx, st, "f.yaml", d); err != nil {
		t.Fatal(err)
	}
	vs, err := st.FeatureSpecVersions(ctx, store.FeatureSource, "plays")
	if err != nil || strings.Contains(string(vs[0].Spec), "responds_to") {
		t.Fatalf("plays without responds_to stored as %s (%v)", vs[0].Spec, err)
	}
	d2, err := Parse("f.yaml", []byte(strings.Replace(defsYAML, "    timestamp: ts\n", "    timestamp: ts\n    responds_to: [home, search]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Apply(ctx, st, "f.yaml", d2)
	if err != nil {
		t.Fatalf("apply with responds_to naming endpoints not applied: %v", err)
	}
	if i := slices.IndexFunc(out, func(a Applied) bool { return a.Name == "plays" }); i < 0 || !out[i].New || out[i].Version != 2 {
		t.Fatalf("plays after adding responds_to: %+v", out)
	}
	cat, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Sources["plays"].RespondsTo; !slices.Equal(got, []string{"home", "search"}) {
		t.Fatalf("responds_to read back as %v", got)
	}
}

// testCatalog has one feature per aggregate over a source with a numeric,
// a string and a bool field.
func testCatalog(window time.Duration) *Catalog {
	src := &Source{Name: "ev", Entity: "user", Timestamp: "ts", Fields: map[string]FieldType{"x": Float, "s": String, "b": Bool}}
	c := &Catalog{Entities: map[string]*Entity{"user": {Name: "user", Key: "user_id"}}, Sources: map[string]*Source{"ev": src},
		Features: map[string]*Feature{}, SourceVersions: map[string]int{"ev": 1}, EntityVersions: map[string]int{"user": 1}}
	add := func(name, agg, field string) {
		c.Features[name] = &Feature{Name: name, Source: "ev", Aggregate: agg, Field: field, Window: Duration(window), Version: 1}
	}
	add("count", Count, "")
	add("count_x", Count, "x")
	add("sum", Sum, "x")
	add("avg", Avg, "x")
	add("min", Min, "x")
	add("max", Max, "x")
	add("last_x", Last, "x")
	add("last_s", Last, "s")
	add("last_b", Last, "b")
	add("distinct_s", DistinctCount, "s")
	add("distinct_x", DistinctCount, "x")
	return c
}

// bruteForce computes f at t over all events, straight from the window's
// definition: (t - window, t], the latest by (time, log order) for last.
func bruteForce(f *Feature, src *Source, evs []Event, t int64) Value {
	fi := fieldIndex(f, src)
	var in []Event
	for _, e := range evs {
		if e.Time > t-f.Window.D().Microseconds() && e.Time <= t {
			if fi < 0 || e.Vals[fi].Kind != KindNull {
				in = append(in, e)
			}
		}
	}
	switch f.Aggregate {
	case Count:
		return Value{Kind: KindNum, Num: float64(len(in))}
	case DistinctCount:
		set := map[string]bool{}
		for _, e := range in {
			set[distinctKey(e.Vals[fi])] = true
		}
		return Value{Kind: KindNum, Num: float64(len(set))}
	}
	if len(in) == 0 {
		return Value{}
	}
	switch f.Aggregate {
	case Sum, Avg:
		s := 0.0
		for _, e := range in {
			s += e.Vals[fi].Num
		}
		if f.Aggregate == Avg {
			s /= float64(len(in))
		}
		return Value{Kind: KindNum, Num: s}
	case Min, Max:
		m := in[0].Vals[fi].Num
		for _, e := range in {
			if f.Aggregate == Min {
				m = math.Min(m, e.Vals[fi].Num)
			} else {
				m = math.Max(m, e.Vals[fi].Num)
			}
		}
		return Value{Kind: KindNum, Num: m}
	case Last:
		best := in[0]
		for _, e := range in {
			if e.Time > best.Time || e.Time == best.Time && e.Seq > best.Seq {
				best = e
			}
		}
		return best.Vals[fi]
	}
	return Value{}
}

// randomEvents makes events on a coarse time grid (so times tie and land
// exactly on window edges) in random order, some fields null.
func randomEvents(rng *rand.Rand, n, keys int, base int64) []Event {
	evs := make([]Event, n)
	cats := []string{"a", "b", "c", "d"}
	for i := range evs {
		e := Event{Key: "u" + strconv.Itoa(rng.IntN(keys)), Time: base + int64(rng.IntN(240))*int64(time.Minute/time.Microsecond),
			Vals: make([]Value, 3)}
		// Field order is b, s, x.
		if rng.IntN(5) > 0 {
			e.Vals[0] = Value{Kind: KindNum, Num: float64(rng.IntN(2))}
		}
		if rng.IntN(5) > 0 {
			e.Vals[1] = Value{Kind: KindStr, Str: cats[rng.IntN(len(cats))]}
		}
		if rng.IntN(5) > 0 {
			e.Vals[2] = Value{Kind: KindNum, Num: float64(rng.IntN(100)) / 4}
		}
		evs[i] = e
	}
	return evs
}

func eventsJSON(src *Source, evs []Event) string {
	var b strings.Builder
	order := src.FieldOrder()
	for _, e := range evs {
		fmt.Fprintf(&b, `{"user_id":%q,"ts":"%s"`, e.Key, time.UnixMicro(e.Time).UTC().Format(time.RFC3339Nano))
		for i, v := range e.Vals {
			switch {
			case v.Kind == KindStr:
				fmt.Fprintf(&b, `,%q:%q`, order[i], v.Str)
			case v.Kind == KindNum && order[i] == "b":
				fmt.Fprintf(&b, `,%q:%t`, order[i], v.Num != 0)
			case v.Kind == KindNum:
				fmt.Fprintf(&b, `,%q:%g`, order[i], v.Num)
			}
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// TestAggregatesAgainstBruteForce checks every aggregate on both paths, the
// online store (streaming) and the training set (batch), against the brute
// force reference, at label times that hit event times and window edges.
func TestAggregatesAgainstBruteForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	cat := testCatalog(30 * time.Minute)
	src := cat.Sources["ev"]
	// Events arrive in random order over 4 hours: allow that much lateness
	// so the online store takes every one.
	src.Lateness = Duration(5 * time.Hour)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	evs := randomEvents(rng, 3000, 20, base)
	dir := t.TempDir()
	eng := NewEngine(cat, dir, NewMemory(), nil)
	defer eng.Close()
	// Ingest in a few batches so equal times get increasing log order.
	in := eventsJSON(src, evs)
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(in))
	if err != nil || res.Accepted != len(evs) || res.Rejected != 0 || res.Late != 0 {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	// The reference needs the log's order (Seq) for last's ties.
	var logged []Event
	l, _ := OpenLog(eng.LogDir(), src)
	_ = l.Scan(func(e *Event) error {
		c := *e
		c.Vals = slices.Clone(e.Vals)
		logged = append(logged, c)
		return nil
	})
	l.Close()
	if len(logged) != len(evs) {
		t.Fatalf("log holds %d events, want %d", len(logged), len(evs))
	}
	byKey := map[string][]Event{}
	for _, e := range logged {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	labels := &Labels{Header: []string{"user_id", "ts", "label"}, TimeCol: 1}
	for i := range 2000 {
		k := "u" + strconv.Itoa(rng.IntN(22)) // u20, u21 have no events
		// Minute grid plus exact window edges: t - 30m hits event times.
		tt := base + int64(rng.IntN(300)-30)*int64(time.Minute/time.Microsecond)
		if i%7 == 0 {
			tt++ // just after an event time
		}
		labels.Rows = append(labels.Rows, []string{k, strconv.FormatInt(tt, 10), "y"})
		labels.Times = append(labels.Times, tt)
	}
	feats, _ := cat.Select(nil)
	cols, err := TrainingSet(ctx, cat, eng.LogDir(), labels, feats, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r, row := range labels.Rows {
		tt := labels.Times[r]
		online, err := eng.Get(ctx, row[0], feats, time.UnixMicro(tt))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			want := bruteForce(c.Feature, src, byKey[row[0]], tt)
			if got := c.Values[r]; !got.Equal(want) {
				t.Fatalf("batch %s of %s at %d: got %+v, want %+v", c.Feature.Name, row[0], tt, got, want)
			}
			if got, w := online.Features[c.Feature.Name], want.JSON(c.Type); !sameJSON(got, w) {
				t.Fatalf("online %s of %s at %d: got %v, want %v", c.Feature.Name, row[0], tt, got, w)
			}
		}
	}
}

// TestPointInTimeEdges pins the window's ends: an event exactly at the label
// time counts, one exactly a window earlier does not.
func TestPointInTimeEdges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	in := `{"user_id":"a","ts":"2026-11-01T10:00:00Z","x":1}
{"user_id":"a","ts":"2026-11-01T11:00:00Z","x":2}
{"user_id":"a","ts":"2026-11-01T11:00:00.000001Z","x":4}
`
	if _, err := eng.Ingest(ctx, "ev", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	at := func(s string) int64 { us, _ := ParseTime(s); return us }
	cases := []struct {
		time string
		sum  any
	}{
		{"2026-11-01T09:59:59.999999Z", nil},
		{"2026-11-01T10:00:00Z", 1.0},        // event at the label time counts
		{"2026-11-01T11:00:00Z", 2.0},        // the 10:00 event is exactly a window back: out
		{"2026-11-01T10:59:59.999999Z", 1.0}, // 10:00 still in
		{"2026-11-01T11:00:00.000001Z", 6.0},
		{"2026-11-01T12:00:00.000001Z", nil}, // everything aged out
	}
	labels := &Labels{Header: []string{"user_id", "ts"}, TimeCol: 1}
	for _, c := range cases {
		labels.Rows = append(labels.Rows, []string{"a", c.time})
		labels.Times = append(labels.Times, at(c.time))
	}
	feats, _ := cat.Select([]string{"sum"})
	cols, err := TrainingSet(ctx, cat, eng.LogDir(), labels, feats, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if got := cols[0].Values[i].JSON(Float); got != c.sum {
			t.Errorf("batch at %s: got %v, want %v", c.time, got, c.sum)
		}
		v, _ := eng.Get(ctx, "a", feats, time.UnixMicro(at(c.time)))
		if got := v.Features["sum"]; got != c.sum {
			t.Errorf("online at %s: got %v, want %v", c.time, got, c.sum)
		}
	}
}

func TestRejectedEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	in := `{"user_id":"a","ts":"2026-11-01T10:00:00Z","x":1}
{"ts":"2026-11-01T10:00:00Z","x":1}
{"user_id":"a","ts":"yesterday","x":1}
{"user_id":"a","ts":1793527200,"x":"three"}
not json
{"user_id":"a","ts":1793527200.5,"x":3,"b":true}
`
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.Rejected != 4 {
		t.Fatalf("result: %+v", res)
	}
	b, err := os.ReadFile(filepath.Join(eng.DeadLetterDir(), "ev.deadletter.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"line":2`, `missing key field \"user_id\"`, `"line":3`, `neither RFC 3339 nor unix seconds`, `"line":4`, `field \"x\": want a number`, `"line":5`, `not valid JSON at byte 2`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("dead letters lack %s:\n%s", want, b)
		}
	}
	// CSV: a bad row is rejected and the rest proceed.
	csvIn := "user_id,ts,x,s\nb,2026-11-01T10:00:00Z,1.5,q\nb,2026-11-01T10:00:00Z,abc,q\n,2026-11-01T10:00:00Z,1,q\nb,1793527200,2,r\n"
	res, err = eng.Ingest(ctx, "ev", strings.NewReader(csvIn))
	if err != nil || res.Accepted != 2 || res.Rejected != 2 || res.Errors[0].Line != 3 {
		t.Fatalf("csv: %+v %v", res, err)
	}
}

// TestTornTailIsCutOff simulates a writer killed mid-record: readers stop
// before the torn record and the next writer cuts it off.
func TestTornTailIsCutOff(t *testing.T) {
	t.Parallel()
	cat := testCatalog(time.Hour)
	src := cat.Sources["ev"]
	dir := t.TempDir()
	l, err := OpenLog(dir, src)
	if err != nil {
		t.Fatal(err)
	}
	evs := []Event{{Key: "a", Time: 1, Vals: make([]Value, 3)}, {Key: "b", Time: 2, Vals: make([]Value, 3)}}
	if _, _, err := l.Append(evs); err != nil {
		t.Fatal(err)
	}
	l.Close()
	seg := segPath(filepath.Join(dir, "ev"), 1)
	full, _ := os.ReadFile(seg)
	// Tear the second record.
	if err := os.WriteFile(seg, full[:len(full)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	count := func() []string {
		var keys []string
		l, _ := OpenLog(dir, src)
		defer l.Close()
		if err := l.Scan(func(e *Event) error { keys = append(keys, e.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := count(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after tear: %v", got)
	}
	l2, _ := OpenLog(dir, src)
	if _, _, err := l2.Append([]Event{{Key: "c", Time: 3, Vals: make([]Value, 3)}}); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if got := count(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after append: %v", got)
	}
}

// TestTwoWritersShareALog: a second process's appends reach the first
// writer's online store on its next append.
func TestTwoWritersShareALog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	dir := t.TempDir()
	a := NewEngine(cat, dir, NewMemory(), nil)
	b := NewEngine(cat, dir, NewMemory(), nil)
	defer a.Close()
	defer b.Close()
	ingest := func(e *Engine, line string) {
		if _, err := e.Ingest(ctx, "ev", strings.NewReader(line)); err != nil {
			t.Fatal(err)
		}
	}
	ingest(a, `{"user_id":"k","ts":"2026-11-01T10:00:00Z","x":1}`)
	ingest(b, `{"user_id":"k","ts":"2026-11-01T10:01:00Z","x":2}`)
	ingest(a, `{"user_id":"k","ts":"2026-11-01T10:02:00Z","x":4}`)
	feats, _ := cat.Select([]string{"sum"})
	v, _ := a.Get(ctx, "k", feats, time.Date(2026, 11, 1, 10, 5, 0, 0, time.UTC))
	if v.Features["sum"] != 7.0 {
		t.Fatalf("a sees %v, want 7", v.Features["sum"])
	}
}

func TestLateEventsSkipTheOnlineStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	cat.Sources["ev"].Lateness = Duration(time.Minute)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	if _, err := eng.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T10:00:00Z","x":1}`)); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T09:58:00Z","x":2}
{"user_id":"k","ts":"2026-11-01T09:59:30Z","x":4}`))
	if err != nil || res.Late != 1 || res.Accepted != 2 {
		t.Fatalf("late: %+v %v", res, err)
	}
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	feats, _ := cat.Select([]string{"sum"})
	v, _ := eng.Get(ctx, "k", feats, at)
	if v.Features["sum"] != 5.0 {
		t.Fatalf("online sum %v, want 5 (the late event is not applied)", v.Features["sum"])
	}
	// The batch path sees every logged event, so the check finds the one
	// disagreement the watermark policy causes.
	rep, err := Consistency(ctx, eng, feats, 10, at)
	if err != nil || rep.Compared != 1 || rep.Mismatched != 1 {
		t.Fatalf("consistency: %+v %v", rep, err)
	}
}

func TestConsistencyAgrees(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	cat := testCatalog(20 * time.Minute)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	evs := randomEvents(rng, 2000, 50, base)
	// In time order, so nothing is late.
	slices.SortStableFunc(evs, func(a, b Event) int { return int(a.Time - b.Time) })
	if _, err := eng.Ingest(ctx, "ev", strings.NewReader(eventsJSON(cat.Sources["ev"], evs))); err != nil {
		t.Fatal(err)
	}
	feats, _ := cat.Select(nil)
	newest := evs[len(evs)-1].Time
	// The online store answers for now: the newest event's time and after.
	for _, at := range []int64{newest, newest + 10*60e6 + 1} {
		rep, err := Consistency(ctx, eng, feats, 30, time.UnixMicro(at))
		if err != nil || rep.Keys != 30 || rep.Compared != 30*len(feats) || rep.Mismatched != 0 {
			t.Fatalf("consistency at %d: %+v %v", at, rep, err)
		}
	}
	// A fresh engine replaying the log agrees too: the log is the embedded
	// store's persistence.
	again := NewEngine(cat, eng.dir, NewMemory(), nil)
	defer again.Close()
	if err := again.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMicro(newest)
	for _, k := range []string{"u1", "u7", "u33"} {
		v1, _ := eng.Get(ctx, k, feats, at)
		v2, _ := again.Get(ctx, k, feats, at)
		for n := range v1.Features {
			if !sameJSON(v1.Features[n], v2.Features[n]) {
				t.Fatalf("replayed %s/%s: %v vs %v", k, n, v2.Features[n], v1.Features[n])
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(defsYAML))
	f.Add([]byte("features: [{name: a, source: b, aggregate: sum, window: 1h}]"))
	f.Add([]byte("entities: {}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.yaml", data)
		if err == nil && d == nil {
			t.Fatal("nil defs without an error")
		}
		if err != nil {
			var fe flow.Errors
			if !errors.As(err, &fe) || len(fe) == 0 {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	cat := testCatalog(time.Hour)
	src := cat.Sources["ev"]
	f.Add([]byte(`{"user_id":"a","ts":"2026-11-01T10:00:00Z","x":1,"s":"q","b":true}`))
	f.Add([]byte(`{"user_id":7,"ts":1793527200.25}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		d := NewDecoder(src, "user_id")
		ev, err := d.DecodeJSON(line)
		if err != nil {
			return
		}
		if ev.Key == "" || len(ev.Vals) != 3 {
			t.Fatalf("accepted a bad event: %+v", ev)
		}
		// What decodes must survive the log's encoding.
		rec := appendRecord(nil, &ev)
		var back Event
		size, n := binaryUvarint(rec)
		if err := decodeRecord(rec[n:n+int(size)], 3, &back); err != nil || back.Key != ev.Key || back.Time != ev.Time {
			t.Fatalf("round trip: %+v vs %+v (%v)", back, ev, err)
		}
	})
}

func binaryUvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }

func TestBackfillLabels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	in := `{"user_id":"b","ts":"2026-11-01T10:00:00Z","x":1}
{"user_id":"a","ts":"2026-11-01T11:00:00Z","x":2}
`
	if _, err := eng.Ingest(ctx, "ev", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	feats, _ := cat.Select([]string{"sum"})
	from := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	l, err := BackfillLabels(cat, eng.LogDir(), feats, from, from.Add(2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Two keys, three times, sorted by time then key.
	if len(l.Rows) != 6 || l.Rows[0][0] != "a" || l.Rows[1][0] != "b" || l.Rows[5][1] != "2026-11-01T12:00:00Z" {
		t.Fatalf("rows %v", l.Rows)
	}
	cols, err := TrainingSet(ctx, cat, eng.LogDir(), l, feats, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, v := range cols[0].Values {
		got = append(got, v.JSON(Float))
	}
	// (t - 1h, t]: the 11:00 event counts at 11:00 but no longer at 12:00.
	want := []any{nil, 1.0, 2.0, nil, nil, nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("values %v, want %v", got, want)
	}
	if _, err := BackfillLabels(cat, eng.LogDir(), feats, from, from.Add(-time.Hour), time.Hour); err == nil {
		t.Fatal("a backwards range was accepted")
	}
}

// TestTailSeesOtherWriters: events another process appends reach an
// engine's online store by Tail, and before its own next append (even
// when it appended nothing yet since its replay).
func TestTailSeesOtherWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	dir := t.TempDir()
	a := NewEngine(cat, dir, NewMemory(), nil)
	defer a.Close()
	if err := a.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	b := NewEngine(cat, dir, NewMemory(), nil)
	defer b.Close()
	if _, err := b.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T10:00:00Z","x":1}`)); err != nil {
		t.Fatal(err)
	}
	feats, _ := cat.Select([]string{"sum"})
	at := time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC)
	// a appends without tailing first: b's event is still applied.
	if _, err := a.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T10:01:00Z","x":2}`)); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get(ctx, "k", feats, at); v.Features["sum"] != 3.0 {
		t.Fatalf("a after its append: %v", v.Features["sum"])
	}
	if _, err := b.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T10:02:00Z","x":4}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Tail(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get(ctx, "k", feats, at); v.Features["sum"] != 7.0 {
		t.Fatalf("a after tail: %v", v.Features["sum"])
	}
	// Tailing again applies nothing twice.
	if err := a.Tail(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get(ctx, "k", feats, at); v.Features["sum"] != 7.0 {
		t.Fatalf("a after a second tail: %v", v.Features["sum"])
	}
}

// flaky fails Apply n times, then works.
type flaky struct {
	*Memory
	fails int
}

func (f *flaky) Apply(ctx context.Context, source string, evs []Event, retention int64) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("store down")
	}
	return f.Memory.Apply(ctx, source, evs, retention)
}

// TestOnlineFailureDoesNotDuplicate: a batch whose online apply fails is
// still logged once and reported as accepted (a retrying caller would
// otherwise log it again); catch-up applies it later.
func TestOnlineFailureDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	on := &flaky{Memory: NewMemory(), fails: 1}
	eng := NewEngine(cat, t.TempDir(), on, nil)
	defer eng.Close()
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"k","ts":"2026-11-01T10:00:00Z","x":10}`))
	if err != nil || res.Accepted != 1 {
		t.Fatalf("ingest with the store down: %+v %v", res, err)
	}
	if err := eng.Tail(ctx); err != nil {
		t.Fatal(err)
	}
	feats, _ := cat.Select([]string{"sum", "count_x"})
	v, _ := eng.Get(ctx, "k", feats, time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC))
	if v.Features["sum"] != 10.0 || v.Features["count_x"] != 1.0 {
		t.Fatalf("after catch-up: %v", v.Features)
	}
	n := 0
	l, _ := OpenLog(eng.LogDir(), cat.Sources["ev"])
	_ = l.Scan(func(*Event) error { n++; return nil })
	l.Close()
	if n != 1 {
		t.Fatalf("%d records logged, want 1", n)
	}
}

// TestCountsOfBoolAreNumbers: a count or sum over a bool field is a number;
// only last keeps the field's type.
func TestCountsOfBoolAreNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := testCatalog(time.Hour)
	cat.Features["count_b"] = &Feature{Name: "count_b", Source: "ev", Aggregate: Count, Field: "b", Window: Duration(time.Hour), Version: 1}
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	in := `{"user_id":"k","ts":"2026-11-01T10:00:00Z","b":true}
{"user_id":"k","ts":"2026-11-01T10:01:00Z","b":false}
{"user_id":"k","ts":"2026-11-01T10:02:00Z","b":true}
`
	if _, err := eng.Ingest(ctx, "ev", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	feats, _ := cat.Select([]string{"count_b", "last_b"})
	v, _ := eng.Get(ctx, "k", feats, time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC))
	if v.Features["count_b"] != 3.0 || v.Features["last_b"] != true {
		t.Fatalf("values %v", v.Features)
	}
}

// TestStrayTempSegmentIsIgnored: a kill while a segment is being created
// leaves at most a temporary file, which readers and writers ignore.
func TestStrayTempSegmentIsIgnored(t *testing.T) {
	t.Parallel()
	cat := testCatalog(time.Hour)
	dir := t.TempDir()
	l, _ := OpenLog(dir, cat.Sources["ev"])
	if _, _, err := l.Append([]Event{{Key: "a", Time: 1, Vals: make([]Value, 3)}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, "ev", ".new-segment-123"), []byte("BATON"), 0o644); err != nil {
		t.Fatal(err)
	}
	l2, _ := OpenLog(dir, cat.Sources["ev"])
	defer l2.Close()
	if _, _, err := l2.Append([]Event{{Key: "b", Time: 2, Vals: make([]Value, 3)}}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := l2.Scan(func(e *Event) error { keys = append(keys, e.Key); return nil }); err != nil || strings.Join(keys, "") != "ab" {
		t.Fatalf("keys %v %v", keys, err)
	}
}

// TestDecodeRefusesDuplicateKeysAndBadUTF8: a key written twice would keep
// the last value silently; bytes that are not UTF-8 would become U+FFFD and
// merge two entities. Both are refused with a message naming the problem.
func TestDecodeRefusesDuplicateKeysAndBadUTF8(t *testing.T) {
	t.Parallel()
	d := NewDecoder(testCatalog(time.Hour).Sources["ev"], "user_id")
	if _, err := d.DecodeJSON([]byte(`{"user_id":"a","ts":"2026-11-01T10:00:00Z","x":1,"x":2}`)); err == nil || !strings.Contains(err.Error(), `"x" is written twice`) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := d.DecodeJSON([]byte("{\"user_id\":\"a\xff\",\"ts\":\"2026-11-01T10:00:00Z\"}")); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("bad UTF-8: %v", err)
	}
	if _, err := d.DecodeJSON([]byte(`{"user_id":"a","ts":"2026-11-01T10:00:00Z","s":"x:y\"z","x":1}`)); err != nil {
		t.Fatalf("a good event: %v", err)
	}
}
