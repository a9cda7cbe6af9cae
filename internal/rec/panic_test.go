package rec

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A panic in a model's goroutines (here, factors one row short of the
// catalog and no member factors: a damaged model) comes back as a
// *PanicError from the call that started them, with the stack, instead
// of ending the process: a server would lose every endpoint with it.
func TestGoroutinePanicsAreErrors(t *testing.T) {
	ctx := context.Background()
	_, tr, te := world(t, 3, 200, 60)
	m := train(t, KindALS, tr, map[string]string{"factors": "4", "iterations": "2"})
	s := m.s.(*alsModel)
	short := len(s.Y) - s.K
	s.Y = s.Y[:short:short]
	s.X = nil
	all := make([]int32, len(m.b.Titles))
	for i := range all {
		all[i] = int32(i)
	}
	check := func(what string, err error) {
		t.Helper()
		var pe *PanicError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "panic in a model goroutine") || len(pe.Stack) == 0 {
			t.Errorf("%s: %v, want a *PanicError with its stack", what, err)
		}
	}
	_, err := m.SimilarIndexes(ctx, all, 10, 2)
	check("SimilarIndexes", err)
	check("TopNAll", m.TopNAll(ctx, 5, func(string, []Item) error { return nil }))
	_, err = Evaluate(ctx, m, te, 10)
	check("Evaluate", err)
}
