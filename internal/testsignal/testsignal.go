// Package testsignal lets code under test announce that something happened,
// so that a test can wait for it, or prove that it did not happen, without
// sleeping. It follows River's testsignal: production code holds a Signal
// field that is nil (and free) unless a test initialises it.
package testsignal

import (
	"fmt"
	"time"
)

// TB is the part of testing.TB a Signal needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Signal carries values of type T from code under test to a test. The zero
// value is inert: Signal on it does nothing, so production code pays one nil
// check.
type Signal[T any] struct {
	ch chan T
}

// Init makes the signal live; call it in a test before the code runs.
func (s *Signal[T]) Init() { s.ch = make(chan T, 1000) }

// Signal records v if a test is listening; it never blocks (a full buffer
// drops v, and a test that needs more than 1000 pending values is waiting
// on the wrong thing).
func (s *Signal[T]) Signal(v T) {
	if s == nil || s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
	}
}

// Wait returns the next value, failing the test after within.
func (s *Signal[T]) Wait(t TB, within time.Duration) T {
	t.Helper()
	s.mustInit(t)
	select {
	case v := <-s.ch:
		return v
	case <-time.After(within):
		var zero T
		t.Fatalf("after %v, signal %T not received", within, zero)
		return zero
	}
}

// RequireEmpty fails the test if a value has been signalled: the proof that
// something did not happen, taken once the code has reached a point where it
// would have happened.
func (s *Signal[T]) RequireEmpty(t TB) {
	t.Helper()
	s.mustInit(t)
	select {
	case v := <-s.ch:
		t.Fatalf("signal received, want none: %s", fmt.Sprint(v))
	default:
	}
}

func (s *Signal[T]) mustInit(t TB) {
	t.Helper()
	if s.ch == nil {
		t.Fatalf("testsignal: Init was not called")
	}
}
