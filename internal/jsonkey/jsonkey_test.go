package jsonkey

import (
	"runtime"
	"strings"
	"testing"
)

func TestDuplicate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{`{"a": 1, "b": 2}`, ""},
		{`{"a": 1, "a": 2}`, "a"},
		{`{"params": {"date": "a", "n": 1, "date": "b"}}`, "params.date"},
		{`[{"unit": "a"}, {"unit": "b", "unit": "c"}]`, "[1].unit"},
		{`{"x": [1, [2, {"k": 1, "k": 2}]]}`, "x[1][1].k"},
		{`{"a": {"b": 1}, "c": {"b": 1}}`, ""},
		{`[{"a": 1}, {"a": 1}]`, ""},
		{`{"a": [{"z": 1}], "b": {"z": {"z": 1}}}`, ""},
		{`{"a": 1, "a"`, "a"},
		{`not json`, ""},
		{``, ""},
	} {
		if got := Duplicate([]byte(tc.doc)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.doc, got, tc.want)
		}
	}
}

func FuzzDuplicate(f *testing.F) {
	for _, s := range []string{`{"a": 1, "a": 2}`, `[{"a": [1, {"b": 2}]}]`, `{"x": {"y": [{}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		Duplicate(b) // must not panic
	})
}

func BenchmarkDuplicateEvent(b *testing.B) {
	line := []byte(`{"member_id": "m123", "ts": "2026-12-01T10:00:00Z", "title_id": "t9", "minutes": 42.5, "market": "US"}`)
	for b.Loop() {
		if Duplicate(line) != "" {
			b.Fatal("duplicate")
		}
	}
}

func TestCountTop(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]int{
		`{}`: 0,
		`{"a": 1, "b": {"c": 2, "d": [3, {"e": 4}]}}`: 2,
		`{"a:b": "c:d", "e\\"": ":"}`:                 2,
		`{"a": 1, "a": 2}`:                            2,
	} {
		if got := CountTop([]byte(doc)); got != want {
			t.Errorf("%s: %d, want %d", doc, got, want)
		}
	}
}

func BenchmarkCountTopEvent(b *testing.B) {
	line := []byte(`{"member_id": "m123", "ts": "2026-12-01T10:00:00Z", "title_id": "t9", "minutes": 42.5, "market": "US"}`)
	for b.Loop() {
		if CountTop(line) != 5 {
			b.Fatal("count")
		}
	}
}

// TestDuplicateDeepNesting: a document of lists nested 8,000 deep (16 KB)
// must be walked in memory linear in its depth. Each level used to keep
// its path as strings ("[0][0][0]..."), 3·depth² bytes in all: 97 MB
// here, 1.2 GB at 20,000, and past 20 GB for a 200 KB request body,
// which any viewer could send to /predict (every API body is walked
// before it is decoded). The deepest key written twice is still named.
func TestDuplicateDeepNesting(t *testing.T) {
	const depth = 8000
	doc := strings.Repeat("[", depth) + `{"k": 1, "k": 2}` + strings.Repeat("]", depth)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := Duplicate([]byte(doc))
	runtime.ReadMemStats(&after)
	if want := strings.Repeat("[0]", depth) + ".k"; got != want {
		t.Errorf("got a path of %d bytes, want %d", len(got), len(want))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("walking %d nested lists allocated %d MB, want under 16", depth, alloc>>20)
	}
	// Deeper than encoding/json decodes: no walk past its limit.
	deep := []byte(strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000))
	runtime.ReadMemStats(&before)
	if got := Duplicate(deep); got != "" {
		t.Errorf("got %q", got)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("20,000 nested lists allocated %d MB, want under 16", alloc>>20)
	}
}
