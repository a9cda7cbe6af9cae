package feature

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// A snapshot holds exactly the keys with an event in the activity window,
// each feature's value as the brute-force reference and the online store
// give it at that time; Events hands over exactly the events of (from, to].
func TestSnapshotAndEventsAgainstBruteForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	cat := testCatalog(30 * time.Minute)
	src := cat.Sources["ev"]
	src.Lateness = Duration(5 * time.Hour)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	evs := randomEvents(rng, 3000, 60, base)
	eng := NewEngine(cat, t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	if res, err := eng.Ingest(ctx, "ev", strings.NewReader(eventsJSON(src, evs))); err != nil || res.Accepted != len(evs) {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	var logged []Event
	l, _ := OpenLog(eng.LogDir(), src)
	_ = l.Scan(func(e *Event) error {
		c := *e
		c.Vals = slices.Clone(e.Vals)
		logged = append(logged, c)
		return nil
	})
	l.Close()
	byKey := map[string][]Event{}
	for _, e := range logged {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	feats, _ := cat.Select(nil)
	for _, c := range []struct {
		at     int64 // minutes after base
		active time.Duration
	}{{120, 10 * time.Minute}, {239, time.Hour}, {60, 2 * time.Minute}, {300, time.Minute}} {
		at := base + c.at*int64(time.Minute/time.Microsecond)
		snap, err := eng.Snapshot(ctx, feats, c.active, time.UnixMicro(at))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for k, es := range byKey {
			if slices.ContainsFunc(es, func(e Event) bool { return e.Time > at-c.active.Microseconds() && e.Time <= at }) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		if !slices.Equal(snap.Keys, want) {
			t.Fatalf("at +%dm, active %s: keys %v, want %v", c.at, c.active, snap.Keys, want)
		}
		for i, k := range snap.Keys {
			online, err := eng.Get(ctx, k, feats, time.UnixMicro(at))
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range snap.Columns {
				w := bruteForce(col.Feature, src, byKey[k], at)
				if got := col.Values[i]; !got.Equal(w) {
					t.Fatalf("%s of %s at +%dm: %+v, want %+v", col.Feature.Name, k, c.at, got, w)
				}
				if got := online.Features[col.Feature.Name]; !sameJSON(got, w.JSON(col.Type)) {
					t.Fatalf("online %s of %s: %v, want %v", col.Feature.Name, k, got, w.JSON(col.Type))
				}
			}
		}
		// Events of (at - 45m, at].
		from := at - 45*int64(time.Minute/time.Microsecond)
		var got, wantEv []int64
		if err := eng.Events(ctx, "ev", time.UnixMicro(from), time.UnixMicro(at), func(ev *Event) error {
			got = append(got, ev.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, e := range logged {
			if e.Time > from && e.Time <= at {
				wantEv = append(wantEv, e.Seq)
			}
		}
		if !slices.Equal(got, wantEv) {
			t.Fatalf("events of (%d, %d]: %d, want %d", from, at, len(got), len(wantEv))
		}
	}
	if err := eng.Events(ctx, "nope", time.UnixMicro(base), time.UnixMicro(base), func(*Event) error { return nil }); err == nil || !strings.Contains(err.Error(), `unknown source "nope"`) {
		t.Fatalf("unknown source: %v", err)
	}
	if _, err := eng.Snapshot(ctx, feats, 0, time.UnixMicro(base)); err == nil {
		t.Fatal("a snapshot without an activity window was made")
	}
}
