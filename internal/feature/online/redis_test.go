package online

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/featuretest"
)

// segShift is where the event log puts a Seq's segment number (Seq =
// segment<<segShift | offset), so the Seqs here look like the log's.
const segShift = 36

func testRedisURL() string {
	return cmp.Or(os.Getenv("BATON_TEST_REDIS_URL"), "redis://127.0.0.1:6379/0")
}

// testRedis returns a store under a prefix of its own, deleted afterwards.
func testRedis(tb testing.TB) *Redis {
	tb.Helper()
	url := testRedisURL()
	prefix := fmt.Sprintf("baton_test_%016x", rand.Uint64())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := NewRedis(ctx, url, prefix)
	if err != nil {
		featuretest.NeedService(tb, "Redis at "+url, err)
	}
	tb.Cleanup(func() {
		r.Close()
		// The store may be closed by its engine already: clean up through
		// a client of our own.
		opt, _ := redis.ParseURL(url)
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			tb.Errorf("list test keys under %s: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				tb.Errorf("delete test keys under %s: %v", prefix, err)
			}
		}
	})
	return r
}

func TestRedisMemberRoundTrip(t *testing.T) {
	evs := []feature.Event{
		{Time: 1_700_000_000_123_456, Ingested: 1_700_000_001_000_000, Seq: 1<<segShift | 99,
			Vals: []feature.Value{{}, {Kind: feature.KindNum, Num: -2.5}, {Kind: feature.KindStr, Str: "a\x00b:ü"}, {Kind: feature.KindStr}}},
		{Time: -5, Seq: 0, Vals: []feature.Value{}},
		{Time: math.MaxInt64 >> 11, Seq: math.MaxInt64, Vals: []feature.Value{{Kind: feature.KindNum, Num: math.Inf(1)}}},
	}
	for _, ev := range evs {
		m := string(appendMember(nil, &ev))
		var got feature.Event
		if err := decodeMember(m, &got); err != nil {
			t.Fatalf("decode %+v: %v", ev, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip: got %+v, want %+v", got, ev)
		}
		for n := range len(m) {
			if err := decodeMember(m[:n], &got); err == nil {
				t.Errorf("a member cut to %d of %d bytes decoded without error", n, len(m))
			}
		}
	}
}

// TestRedisMatchesMemory applies one random event set to both stores and
// compares every look-up within the retention of the newest event.
func TestRedisMatchesMemory(t *testing.T) {
	ctx := context.Background()
	r := testRedis(t)
	mem := feature.NewMemory()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	const (
		source    = "plays"
		base      = int64(1_700_000_000_000_000)
		retention = int64(2000)
		batches   = 25
	)
	keys := []string{"m1", "m2", "a:b", "ü", "m5", "m6"}
	var seq int64 = 1 << segShift
	newest := int64(math.MinInt64)
	var last []feature.Event
	applied := 0
	for b := range batches {
		evs := make([]feature.Event, 1+rng.IntN(60))
		for i := range evs {
			// Times on a coarse grid make ties common; the jitter puts
			// many events out of order and some behind the retention.
			tm := base + int64(b)*300 + int64(rng.IntN(24)-12)*100
			seq += 1 + int64(rng.IntN(50))
			evs[i] = feature.Event{Key: keys[rng.IntN(len(keys))], Time: tm, Ingested: base + int64(b), Seq: seq,
				Vals: []feature.Value{{Kind: feature.KindNum, Num: float64(rng.IntN(100))}, {Kind: feature.KindStr, Str: fmt.Sprint("t", rng.IntN(5))}, {}}}
			newest = max(newest, tm)
		}
		if err := r.Apply(ctx, source, evs, retention); err != nil {
			t.Fatal(err)
		}
		if err := mem.Apply(ctx, source, evs, retention); err != nil {
			t.Fatal(err)
		}
		last = evs
		applied += len(evs)
	}

	got, ok, err := r.Newest(ctx, source)
	if err != nil || !ok || got != newest {
		t.Fatalf("Newest = %d, %v, %v; want %d", got, ok, err, newest)
	}
	floor := newest - retention
	rangeBoth := func(key string, from, to int64) ([]feature.Event, []feature.Event) {
		t.Helper()
		re, err := r.Range(ctx, source, key, from, to)
		if err != nil {
			t.Fatal(err)
		}
		me, err := mem.Range(ctx, source, key, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return re, me
	}
	for _, k := range keys {
		re, me := rangeBoth(k, floor, newest)
		if !reflect.DeepEqual(re, me) {
			t.Fatalf("key %q, (%d, %d]: Redis has %d events, Memory %d\nredis  %v\nmemory %v", k, floor, newest, len(re), len(me), re, me)
		}
		for range 40 {
			from := floor + rng.Int64N(retention+100)
			to := from + rng.Int64N(retention)
			if re, me := rangeBoth(k, from, to); !reflect.DeepEqual(re, me) {
				t.Fatalf("key %q, (%d, %d]: Redis has %d events, Memory %d", k, from, to, len(re), len(me))
			}
		}
	}

	// Trimming: Redis cuts against the newest event of the whole batch,
	// Memory against the newest so far, so Redis keeps a subset, and a key
	// the last batch touched keeps nothing at or behind the floor.
	touched := map[string]bool{}
	for _, ev := range last {
		touched[ev.Key] = true
	}
	trimmed, kept := 0, 0
	for _, k := range keys {
		re, me := rangeBoth(k, math.MinInt64, math.MaxInt64)
		kept += len(re)
		for _, ev := range re {
			if !slices.ContainsFunc(me, func(m feature.Event) bool { return reflect.DeepEqual(m, ev) }) {
				t.Errorf("key %q: Redis kept %+v, which Memory trimmed", k, ev)
			}
			if touched[k] && ev.Time <= floor {
				t.Errorf("key %q: Redis kept %+v at or behind the retention floor %d", k, ev, floor)
			}
		}
		trimmed += len(me) - len(re)
	}
	if n, _ := r.c.ZCard(ctx, r.eventsKey(source, last[0].Key)).Result(); n == 0 {
		t.Errorf("the last batch's key %q is empty", last[0].Key)
	}
	if ttl, err := r.c.PTTL(ctx, r.eventsKey(source, last[0].Key)).Result(); err != nil || ttl <= 0 {
		t.Errorf("the last batch's key has TTL %v (%v); want the retention plus slack", ttl, err)
	}
	if kept == applied {
		t.Errorf("Redis trimmed none of %d events; the test does not exercise retention", applied)
	}
	t.Logf("Redis kept %d of %d events, %d fewer than Memory", kept, applied, trimmed)
}

func TestRedisWindowBoundary(t *testing.T) {
	ctx := context.Background()
	r := testRedis(t)
	mem := feature.NewMemory()
	ev := func(tm, seq int64) feature.Event {
		return feature.Event{Key: "k", Time: tm, Seq: seq, Vals: []feature.Value{{Kind: feature.KindNum, Num: float64(seq)}}}
	}
	// Equal times arrive in reverse Seq order, and across batches.
	for _, batch := range [][]feature.Event{{ev(300, 5), ev(200, 4)}, {ev(100, 1), ev(200, 3), ev(200, 2)}} {
		for _, st := range []feature.OnlineStore{r, mem} {
			if err := st.Apply(ctx, "s", batch, 1_000_000); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		from, to int64
		want     []int64 // Seqs
	}{
		{100, 300, []int64{2, 3, 4, 5}},
		{99, 299, []int64{1, 2, 3, 4}},
		{99, 100, []int64{1}},
		{100, 100, nil},
		{199, 200, []int64{2, 3, 4}},
		{200, 200, nil},
		{300, 400, nil},
		{0, 1000, []int64{1, 2, 3, 4, 5}},
	} {
		for name, st := range map[string]feature.OnlineStore{"redis": r, "memory": mem} {
			evs, err := st.Range(ctx, "s", "k", c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, e := range evs {
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, c.want) {
				t.Errorf("%s: Range(%d, %d] = Seqs %v, want %v", name, c.from, c.to, seqs, c.want)
			}
		}
	}
	if evs, err := r.Range(ctx, "s", "absent", 0, 1000); err != nil || len(evs) != 0 {
		t.Errorf("absent key: %v, %v; want no events", evs, err)
	}
}

func TestNewRedisUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback refuses at once.
	_, err := NewRedis(ctx, "redis://127.0.0.1:1/0", "x")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("NewRedis of a dead address: %v; want an error naming it", err)
	}
}

// playLines returns JSON lines of plays: ties, disorder, some events behind
// the lateness, and one malformed line.
func playLines(rng *rand.Rand, n int, base time.Time, keys ...string) (string, time.Time) {
	var b strings.Builder
	newest := base
	for i := range n {
		at := base.Add(time.Duration(i)*3*time.Second + time.Duration(rng.IntN(40)-30)*time.Minute).Truncate(time.Second)
		if i%7 == 0 {
			at = at.Add(-3 * time.Hour) // behind the lateness of 1h
		}
		if at.After(newest) {
			newest = at
		}
		fmt.Fprintf(&b, `{"member_id":%q,"ts":%q,"secs":%d.25,"title":"t%d"}`+"\n",
			keys[rng.IntN(len(keys))], at.Format(time.RFC3339Nano), rng.IntN(300), rng.IntN(6))
	}
	b.WriteString(`{"member_id":"m1","ts":"yesterday"}` + "\n")
	return b.String(), newest
}

// TestRedisEngineMatchesMemory ingests the same input into an engine on
// each store and compares their look-ups.
func TestRedisEngineMatchesMemory(t *testing.T) {
	ctx := context.Background()
	r := testRedis(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	keys := []string{"m1", "m2", "m3", "42"}
	onRedis := feature.NewEngine(featuretest.PlaysCatalog(), t.TempDir(), r, nil)
	onMem := feature.NewEngine(featuretest.PlaysCatalog(), t.TempDir(), feature.NewMemory(), nil)
	t.Cleanup(func() { onRedis.Close(); onMem.Close() })

	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var newest time.Time
	for chunk := range 3 {
		lines, nw := playLines(rng, 400, base.Add(time.Duration(chunk)*20*time.Minute), keys...)
		if nw.After(newest) {
			newest = nw
		}
		rr, err := onRedis.Ingest(ctx, "plays", strings.NewReader(lines))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := onMem.Ingest(ctx, "plays", strings.NewReader(lines))
		if err != nil {
			t.Fatal(err)
		}
		if rr.Accepted != rm.Accepted || rr.Late != rm.Late || rr.Rejected != 1 || rm.Rejected != 1 {
			t.Fatalf("chunk %d: ingest on Redis %+v, on Memory %+v", chunk, rr, rm)
		}
		if rr.Late == 0 {
			t.Fatalf("chunk %d: no late events; the input should have some", chunk)
		}
	}
	feats, err := onMem.Catalog().Select(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		// As of the newest event and later: earlier windows reach behind
		// the retention, where the stores may trim differently.
		for _, at := range []time.Time{newest, newest.Add(time.Second), newest.Add(7 * time.Minute), newest.Add(59 * time.Minute), newest.Add(2 * time.Hour)} {
			vr, err := onRedis.Get(ctx, k, feats, at)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := onMem.Get(ctx, k, feats, at)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(vr, vm) {
				t.Errorf("key %s as of %s:\nredis  %v\nmemory %v", k, at, vr.Features, vm.Features)
			}
		}
	}
	if v, _ := onRedis.Get(ctx, "m1", feats, newest); v.Features["plays_1h"] == 0.0 {
		t.Errorf("m1 has no plays in the last hour: %v; the test input is too thin", v.Features)
	}
}

// BenchmarkFreshness is featuretest.BenchFreshness on Redis (skipped
// without Redis, failed under CI=true); package feature measures the
// embedded store the same way.
func BenchmarkFreshness(b *testing.B) {
	b.Run("redis", func(b *testing.B) { featuretest.BenchFreshness(b, testRedis(b)) })
}

// BenchmarkRedisGet10 times an online look-up of 10 features of one key,
// about 200 events in its longest window.
func BenchmarkRedisGet10(b *testing.B) {
	ctx := context.Background()
	r := testRedis(b)
	var feats []*feature.Feature
	for i, agg := range []string{feature.Count, feature.Sum, feature.Avg, feature.Min, feature.Max, feature.Last, feature.DistinctCount, feature.Count, feature.Sum, feature.Max} {
		w := []time.Duration{time.Hour, 10 * time.Minute}[i%2]
		f := &feature.Feature{Name: fmt.Sprintf("f%d_%s", i, agg), Aggregate: agg, Window: feature.Duration(w)}
		if agg != feature.Count {
			f.Field = "secs"
		}
		if agg == feature.DistinctCount || agg == feature.Last {
			f.Field = "title"
		}
		feats = append(feats, f)
	}
	e := feature.NewEngine(featuretest.PlaysCatalog(feats...), b.TempDir(), r, nil)
	b.Cleanup(func() { e.Close() })
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, `{"member_id":"m1","ts":%q,"secs":%d,"title":"t%d"}`+"\n",
			base.Add(time.Duration(i)*18*time.Second).Format(time.RFC3339), i%97, i%13)
	}
	if _, err := e.Ingest(ctx, "plays", strings.NewReader(in.String())); err != nil {
		b.Fatal(err)
	}
	at := base.Add(time.Hour)
	sel, err := e.Catalog().Select(nil)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		v, err := e.Get(ctx, "m1", sel, at)
		lat = append(lat, time.Since(start))
		if err != nil || len(v.Features) != 10 {
			b.Fatalf("Get: %v, %d features", err, len(v.Features))
		}
	}
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-µs")
}
