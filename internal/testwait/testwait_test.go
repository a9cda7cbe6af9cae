package testwait_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/testwait"
)

type fakeT struct{ failed string }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	testwait.For(t, 5*time.Second, func() bool { return n.Load() == 3 }, "three increments")
}

func TestUntilFailsWithLastState(t *testing.T) {
	f := &fakeT{}
	calls := 0
	testwait.Until(f, 20*time.Millisecond, func() (bool, string) {
		calls++
		return false, fmt.Sprintf("%d runs", 7)
	}, "run %d to finish", 3)
	if !strings.Contains(f.failed, "run 3 to finish") || !strings.Contains(f.failed, "last seen: 7 runs") {
		t.Fatalf("message %q", f.failed)
	}
	if calls < 2 {
		t.Fatalf("condition checked %d times, want it polled", calls)
	}
}

func TestForFails(t *testing.T) {
	f := &fakeT{}
	testwait.For(f, 10*time.Millisecond, func() bool { return false }, "never")
	if !strings.Contains(f.failed, "still waiting for never") {
		t.Fatalf("message %q", f.failed)
	}
}

func TestUntilEveryChecksAtItsInterval(t *testing.T) {
	f := &fakeT{}
	calls := 0
	start := time.Now()
	testwait.UntilEvery(f, 100*time.Millisecond, 40*time.Millisecond, func() (bool, string) {
		calls++
		return false, ""
	}, "never")
	if f.failed == "" {
		t.Fatal("UntilEvery did not fail on a condition that never held")
	}
	// Checked at 0, 40, 80 and 120 ms: far fewer than every Poll would.
	if took := time.Since(start); calls < 2 || calls > 5 {
		t.Fatalf("condition checked %d times in %s, want about 4 at a 40 ms interval", calls, took)
	}
}
