package startstop_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/startstop"
	"github.com/baton-ml/baton/internal/testwait"
)

// journal records what the services of a test did, in order.
type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, s)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

type recorder struct {
	name string
	j    *journal
	fail error
}

func (r *recorder) Start(context.Context) error {
	if r.fail != nil {
		r.j.add("fail " + r.name)
		return r.fail
	}
	r.j.add("start " + r.name)
	return nil
}

func (r *recorder) Stop() { r.j.add("stop " + r.name) }

func TestStartAllInOrderStopAllInReverse(t *testing.T) {
	j := &journal{}
	svcs := []startstop.Service{&recorder{name: "a", j: j}, &recorder{name: "b", j: j}, &recorder{name: "c", j: j}}
	if err := startstop.StartAll(context.Background(), svcs...); err != nil {
		t.Fatal(err)
	}
	startstop.StopAll(svcs...)
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

var errBroken = errors.New("broken")

func TestStartAllFailureStopsTheStarted(t *testing.T) {
	j := &journal{}
	svcs := []startstop.Service{
		&recorder{name: "a", j: j},
		&recorder{name: "b", j: j},
		&recorder{name: "c", j: j, fail: fmt.Errorf("open c: %w", errBroken)},
		&recorder{name: "d", j: j},
	}
	err := startstop.StartAll(context.Background(), svcs...)
	if !errors.Is(err, errBroken) {
		t.Fatalf("StartAll: %v, want the failing service's error", err)
	}
	// The ones started are stopped, last first; the failed one cleans up
	// after itself and the ones after it never start.
	want := []string{"start a", "start b", "fail c", "stop b", "stop a"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

func TestStartAllFailureStopsRunningLoops(t *testing.T) {
	var running atomic.Int32
	loop := func(ctx context.Context) error {
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		return nil
	}
	a, b := startstop.Func(loop), startstop.Func(loop)
	err := startstop.StartAll(context.Background(), a, b, startstop.Hooks{OnStart: func(context.Context) error { return errBroken }})
	if !errors.Is(err, errBroken) {
		t.Fatalf("StartAll: %v", err)
	}
	// Stop waits for each loop to return: nothing runs once StartAll has.
	if n := running.Load(); n != 0 {
		t.Fatalf("%d loops still run after a failed StartAll", n)
	}
	for _, l := range []*startstop.Loop{a, b} {
		select {
		case <-l.Done():
		default:
			t.Fatal("a loop's Done is open after it was stopped")
		}
	}
}

func TestFuncStopCancelsAndWaits(t *testing.T) {
	started, cleaning, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	l := startstop.Func(func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		// Stop must wait for what the loop does after its context ends.
		close(cleaning)
		<-release
		returned.Store(true)
		return nil
	})
	l.Stop() // before Start: nothing to stop
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); !errors.Is(err, startstop.ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	<-started
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	<-cleaning
	select {
	case <-stopped:
		t.Fatal("Stop returned while the loop was still cleaning up")
	default:
	}
	close(release)
	<-stopped
	if !returned.Load() {
		t.Fatal("Stop returned before the loop did")
	}
	l.Stop() // twice: nothing more to do
	if err := l.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
}

func TestFuncKeepsTheLoopsError(t *testing.T) {
	l := startstop.Func(func(ctx context.Context) error { return fmt.Errorf("claim tasks: %w", errBroken) })
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), errBroken) {
		t.Fatalf("Err: %v", l.Err())
	}
	// A loop that ended on its own may start again.
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	l.Stop()
}

func TestFuncEndsWithItsStartContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := startstop.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	testwait.For(t, 5*time.Second, func() bool {
		select {
		case <-l.Done():
			return true
		default:
			return false
		}
	}, "the loop to end with its start context")
	if !errors.Is(l.Err(), context.Canceled) {
		t.Fatalf("Err: %v", l.Err())
	}
	if err := l.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start on an ended context: %v", err)
	}
	l.Stop()
}

func TestFuncConcurrentStops(t *testing.T) {
	l := startstop.Func(func(ctx context.Context) error { <-ctx.Done(); return nil })
	for range 3 {
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(l.Stop)
		}
		wg.Wait()
	}
}

func TestHooks(t *testing.T) {
	j := &journal{}
	h := startstop.Hooks{
		OnStart: func(context.Context) error { j.add("open"); return nil },
		OnStop:  func() { j.add("close") },
	}
	if err := startstop.StartAll(context.Background(), h, startstop.Hooks{}); err != nil {
		t.Fatal(err)
	}
	startstop.StopAll(h, startstop.Hooks{})
	if got := j.get(); !slices.Equal(got, []string{"open", "close"}) {
		t.Fatalf("journal %v", got)
	}
}

func TestWithoutCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := startstop.Func(func(ctx context.Context) error { <-ctx.Done(); return nil })
	svc := startstop.WithoutCancel(l)
	if err := startstop.StartAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Only Stop ends it: the caller's cancellation has no effect on it.
	select {
	case <-l.Done():
		t.Fatal("the loop ended with the caller's context")
	default:
	}
	startstop.StopAll(svc)
	select {
	case <-l.Done():
	default:
		t.Fatal("the loop runs after Stop")
	}
}
