package store

import (
	"fmt"
	"strconv"
	"strings"
)

// Shape is how a step's tasks sit in nested foreach levels: Shape[l] holds,
// for each task path of length l in order, how many children it has at
// level l+1. A step outside any foreach has the nil shape (one task, path
// []); a foreach step at the first level has [[n]] (paths [0]..[n-1]); a
// foreach inside it, over an artifact of each of those tasks, has [[n],
// [m0, m1, ...]] (paths [i, j] with j < mi), and so on.
//
// A task's flat index (TaskKey.Index, what the store keys it by) is its
// path's place in depth-first order, so a step of one level keeps the
// indexes it always had.
type Shape [][]int

// Level is the length of the step's task paths.
func (s Shape) Level() int { return len(s) }

// Count is the number of tasks: the number of paths at the deepest level.
func (s Shape) Count() int {
	if len(s) == 0 {
		return 1
	}
	n := 0
	for _, c := range s[len(s)-1] {
		n += c
	}
	return n
}

// Valid checks that each level has one count per path of the level above.
func (s Shape) Valid() error {
	parents := 1
	for l, counts := range s {
		if len(counts) != parents {
			return fmt.Errorf("shape level %d has %d counts for %d paths", l+1, len(counts), parents)
		}
		parents = 0
		for _, c := range counts {
			if c < 0 {
				return fmt.Errorf("shape level %d has a negative count", l+1)
			}
			parents += c
		}
	}
	return nil
}

// Paths lists every task's path, in index order.
func (s Shape) Paths() [][]int {
	paths := [][]int{nil}
	for _, counts := range s {
		next := make([][]int, 0, len(paths))
		for i, p := range paths {
			for j := range counts[i] {
				q := make([]int, len(p)+1)
				copy(q, p)
				q[len(p)] = j
				next = append(next, q)
			}
		}
		paths = next
	}
	return paths
}

// Index returns the flat index of path, and false if the step has no such
// task.
func (s Shape) Index(path []int) (int, bool) {
	if len(path) != len(s) {
		return 0, false
	}
	// pos is the path's place among the paths of its level so far.
	pos := 0
	for l, counts := range s {
		if pos >= len(counts) || path[l] < 0 || path[l] >= counts[pos] {
			return 0, false
		}
		start := 0
		for _, c := range counts[:pos] {
			start += c
		}
		pos = start + path[l]
	}
	return pos, true
}

// Path returns the path of the task at flat index idx.
func (s Shape) Path(idx int) ([]int, bool) {
	if len(s) == 0 {
		return nil, idx == 0
	}
	path := make([]int, len(s))
	for l := len(s) - 1; l >= 0; l-- {
		counts := s[l]
		start := 0
		found := false
		for parent, c := range counts {
			if idx < start+c {
				path[l] = idx - start
				idx = parent
				found = true
				break
			}
			start += c
		}
		if !found {
			return nil, false
		}
	}
	return path, true
}

// FormatPath writes a task path as the segments of its address: "2/5".
func FormatPath(p []int) string {
	var b strings.Builder
	for i, x := range p {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

// Children returns the flat index range [lo, hi) of the tasks whose paths
// extend prefix by one level (depth-first order keeps them together), and
// false if the step's paths are not one level longer than prefix or no
// such prefix exists.
func (s Shape) Children(prefix []int) (lo, hi int, ok bool) {
	l := len(prefix)
	if l+1 != len(s) {
		return 0, 0, false
	}
	pos, ok := s[:l].Index(prefix)
	if !ok {
		return 0, 0, false
	}
	counts := s[l]
	for _, c := range counts[:pos] {
		lo += c
	}
	return lo, lo + counts[pos], true
}
