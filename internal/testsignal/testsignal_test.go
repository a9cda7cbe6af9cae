package testsignal_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/testsignal"
)

type fakeT struct{ failed string }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	if f.failed == "" {
		f.failed = fmt.Sprintf(format, args...)
	}
}

func TestZeroValueIsInert(t *testing.T) {
	var s testsignal.Signal[int]
	s.Signal(1) // must not block or panic
	var p *testsignal.Signal[int]
	p.Signal(1)
}

func TestWaitAndRequireEmpty(t *testing.T) {
	var s testsignal.Signal[string]
	s.Init()
	go s.Signal("fired")
	if got := s.Wait(t, 5*time.Second); got != "fired" {
		t.Fatalf("got %q", got)
	}
	s.RequireEmpty(t)

	f := &fakeT{}
	s.Signal("again")
	s.RequireEmpty(f)
	if !strings.Contains(f.failed, "again") {
		t.Fatalf("RequireEmpty after a signal: %q", f.failed)
	}
}

func TestWaitTimesOut(t *testing.T) {
	var s testsignal.Signal[int]
	s.Init()
	f := &fakeT{}
	s.Wait(f, 10*time.Millisecond)
	if !strings.Contains(f.failed, "not received") {
		t.Fatalf("got %q", f.failed)
	}
	g := &fakeT{}
	var u testsignal.Signal[int]
	u.RequireEmpty(g)
	if !strings.Contains(g.failed, "Init") {
		t.Fatalf("got %q", g.failed)
	}
}
