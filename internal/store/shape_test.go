package store

import (
	"slices"
	"testing"
)

func TestShapePathsAndIndexes(t *testing.T) {
	// Three outer tasks with 2, 0 and 3 inner tasks; the inner ones with
	// 1, 2 | - | 0, 1, 2 innermost.
	s := Shape{{3}, {2, 0, 3}, {1, 2, 0, 1, 2}}
	if err := s.Valid(); err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 0, 0}, {0, 1, 0}, {0, 1, 1}, {2, 1, 0}, {2, 2, 0}, {2, 2, 1}}
	paths := s.Paths()
	if len(paths) != len(want) || s.Count() != len(want) {
		t.Fatalf("paths %v (count %d), want %v", paths, s.Count(), want)
	}
	for i, p := range want {
		if !slices.Equal(paths[i], p) {
			t.Fatalf("path %d is %v, want %v", i, paths[i], p)
		}
		if idx, ok := s.Index(p); !ok || idx != i {
			t.Fatalf("Index(%v) = %d %v, want %d", p, idx, ok, i)
		}
		if got, ok := s.Path(i); !ok || !slices.Equal(got, p) {
			t.Fatalf("Path(%d) = %v %v, want %v", i, got, ok, p)
		}
	}
	for _, bad := range [][]int{{1, 0, 0}, {0, 2, 0}, {0, 0, 1}, {3, 0, 0}, {0, 0}, {-1, 0, 0}} {
		if _, ok := s.Index(bad); ok {
			t.Fatalf("Index(%v) found a task", bad)
		}
	}
	if _, ok := s.Path(6); ok {
		t.Fatal("Path(6) found a task of 6")
	}
	if lo, hi, ok := s.Children([]int{2, 2}); !ok || lo != 4 || hi != 6 {
		t.Fatalf("Children(2/2) = %d..%d %v, want 4..6", lo, hi, ok)
	}
	if lo, hi, ok := s.Children([]int{1, 0}); ok {
		t.Fatalf("Children(1/0) = %d..%d: 1 has no inner tasks", lo, hi)
	}
	if lo, hi, ok := (Shape{{3}}).Children(nil); !ok || lo != 0 || hi != 3 {
		t.Fatalf("Children of the root of one level: %d..%d %v", lo, hi, ok)
	}
	if _, _, ok := s.Children([]int{0}); ok {
		t.Fatal("Children of a prefix two levels up")
	}
	if FormatPath([]int{2, 1, 0}) != "2/1/0" {
		t.Fatal(FormatPath([]int{2, 1, 0}))
	}
	// One level is the flat foreach it always was; none is one task.
	if p := (Shape{{4}}).Paths(); len(p) != 4 || p[3][0] != 3 {
		t.Fatalf("one level: %v", p)
	}
	if p := Shape(nil).Paths(); len(p) != 1 || len(p[0]) != 0 || Shape(nil).Count() != 1 {
		t.Fatalf("no level: %v", p)
	}
	for _, bad := range []Shape{{{2}, {1}}, {{1, 1}}, {{-1}}} {
		if bad.Valid() == nil {
			t.Fatalf("%v is valid", bad)
		}
	}
}
