package rec

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"
)

// PanicError is a panic in one of a model's goroutines (a bug, or a
// model file damaged past Load's checks), recovered there and returned
// by the call that started the goroutine: a panic not recovered in a
// goroutine ends the whole process, a server and every endpoint it
// serves included, and no caller can recover it for the goroutine.
type PanicError struct {
	Value any
	Stack []byte // the goroutine's stack where it panicked
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic in a model goroutine: %v", e.Value) }

// panics keeps the first panic of a group of goroutines: each defers
// catch, the starter returns err after they are done.
type panics struct{ first atomic.Pointer[PanicError] }

// catch recovers the calling goroutine's panic; deferred, directly.
func (p *panics) catch() {
	if v := recover(); v != nil {
		p.first.CompareAndSwap(nil, &PanicError{Value: v, Stack: debug.Stack()})
	}
}

// failed says a goroutine of the group panicked: the others stop early.
func (p *panics) failed() bool { return p.first.Load() != nil }

func (p *panics) err() error {
	if e := p.first.Load(); e != nil {
		return e
	}
	return nil
}
