// Package startstop starts and stops a process's services together, the
// way River's startstop does: StartAll starts them in order and, when one
// fails to start, stops the ones already started (in reverse) before it
// returns the error; StopAll stops them in reverse order, so a service
// stops before the ones it was started after (and may depend on).
package startstop

import (
	"context"
	"errors"
	"sync"
)

// Service is a part of a process that runs between Start and Stop.
type Service interface {
	// Start starts the service. It returns once the service runs (its
	// loops in goroutines of their own), or with the reason it cannot.
	Start(ctx context.Context) error
	// Stop stops the service and returns once it has stopped. Stopping a
	// service that is not running does nothing.
	Stop()
}

// StartAll starts services in order. If one fails to start, those already
// started are stopped, in reverse order, and its error is returned as it
// is (each service names itself in its errors).
func StartAll(ctx context.Context, services ...Service) error {
	for i, s := range services {
		if err := s.Start(ctx); err != nil {
			StopAll(services[:i]...)
			return err
		}
	}
	return nil
}

// StopAll stops services in reverse order: the last started stops first.
func StopAll(services ...Service) {
	for i := len(services) - 1; i >= 0; i-- {
		services[i].Stop()
	}
}

// ErrStarted is returned by Start on a service that is already running.
var ErrStarted = errors.New("startstop: already started")

// Loop is a service made of one loop function (see Func).
type Loop struct {
	run func(ctx context.Context) error

	mu     sync.Mutex
	cancel context.CancelFunc // nil when not running
	done   chan struct{}
	err    error
}

// Func turns a loop into a service: Start runs loop in a goroutine of its
// own and returns at once; Stop cancels the loop's context and waits for
// the loop to return. The loop's context ends with Stop or with the
// context given to Start, whichever comes first: a caller that wants only
// Stop to end it starts it with context.WithoutCancel.
func Func(loop func(ctx context.Context) error) *Loop {
	return &Loop{run: loop}
}

// Start implements Service.
func (l *Loop) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		select {
		case <-l.done:
			l.cancel() // it ended on its own: it may start again
		default:
			return ErrStarted
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.cancel, l.done, l.err = cancel, done, nil
	go func() {
		defer close(done)
		err := l.run(lctx)
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
	}()
	return nil
}

// Stop implements Service.
func (l *Loop) Stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	l.mu.Lock()
	// Another Stop may have finished first; either way it is stopped.
	if l.done == done {
		l.cancel = nil
	}
	l.mu.Unlock()
}

// Done is closed when the loop has returned (on its own, or by Stop); nil
// before the first Start.
func (l *Loop) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// Err is what the loop returned the last time it ended, nil while it runs.
func (l *Loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Hooks makes a service of two functions, for a part that has no loop of
// its own: something opened at Start and closed at Stop. Either may be nil.
// OnStop runs at every Stop; StartAll never stops a service whose Start
// failed (it cleans up after itself).
type Hooks struct {
	OnStart func(ctx context.Context) error
	OnStop  func()
}

// Start implements Service.
func (h Hooks) Start(ctx context.Context) error {
	if h.OnStart == nil {
		return nil
	}
	return h.OnStart(ctx)
}

// Stop implements Service.
func (h Hooks) Stop() {
	if h.OnStop != nil {
		h.OnStop()
	}
}

// WithoutCancel starts s with a context that the cancellation of Start's
// context does not end (its values stay): only Stop stops it. A process
// that must stop its services in order, not all at once when its own
// context ends, starts its long-lived ones so.
func WithoutCancel(s Service) Service { return detached{s} }

type detached struct{ Service }

func (d detached) Start(ctx context.Context) error {
	return d.Service.Start(context.WithoutCancel(ctx))
}
