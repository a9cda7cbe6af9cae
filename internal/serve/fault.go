package serve

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The kinds of fault an endpoint's model can be given.
const (
	// FaultError: the model answers with an error at once.
	FaultError = "error"
	// FaultTimeout: the model does not answer within the endpoint's
	// timeout.
	FaultTimeout = "timeout"
)

// Fault is a failure injected into an endpoint's model, as Netflix's
// failure injection does in production: while it lasts, a share of the
// model's calls fail for real, so the fallback path and everything
// watching it (gate, samples, judges, monitors) are exercised as in an
// outage. It lives in the serving process's memory only.
type Fault struct {
	Kind string `json:"kind"`
	// Until is when the fault ends, on the service's clock.
	Until time.Time `json:"until"`
	// Percent of the calls it hits, by unit (default 100).
	Percent float64 `json:"percent"`
}

type faults struct {
	mu sync.RWMutex
	m  map[string]Fault
}

// InjectFault makes endpoint's model fail as f says until f.Until; a
// zero Kind clears the endpoint's fault.
func (s *Service) InjectFault(endpoint string, f Fault) error {
	if _, ok := s.Endpoint(endpoint); !ok {
		return fmt.Errorf("endpoint %q: %w", endpoint, ErrUnknownEndpoint)
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if f.Kind == "" {
		delete(s.faults.m, endpoint)
		return nil
	}
	switch {
	case f.Kind != FaultError && f.Kind != FaultTimeout:
		return &BadRequest{Msg: fmt.Sprintf("kind %q: %s or %s", f.Kind, FaultError, FaultTimeout)}
	case f.Percent < 0 || f.Percent > 100:
		return &BadRequest{Msg: fmt.Sprintf("percent %g: between 0 and 100", f.Percent)}
	case !f.Until.After(s.d.Now()):
		return &BadRequest{Msg: "the fault must last: until is not after now"}
	}
	if f.Percent == 0 {
		f.Percent = 100
	}
	if s.faults.m == nil {
		s.faults.m = map[string]Fault{}
	}
	s.faults.m[endpoint] = f
	return nil
}

// Faults are the faults in force.
func (s *Service) Faults() map[string]Fault {
	s.faults.mu.RLock()
	defer s.faults.mu.RUnlock()
	now := s.d.Now()
	out := map[string]Fault{}
	for k, f := range s.faults.m {
		if f.Until.After(now) {
			out[k] = f
		}
	}
	return out
}

// injected is the failure a call of endpoint's model for unit meets, if
// any: an error, or (timeout) the wait for ctx's deadline.
func (s *Service) injected(ctx context.Context, endpoint, unit string, timeout time.Duration) error {
	s.faults.mu.RLock()
	f, ok := s.faults.m[endpoint]
	s.faults.mu.RUnlock()
	if !ok || !f.Until.After(s.d.Now()) || f.Percent < 100 && bucket(unit, -1) >= f.Percent {
		return nil
	}
	if f.Kind == FaultTimeout {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return context.DeadlineExceeded
	}
	return fmt.Errorf("injected fault until %s", f.Until.UTC().Format(time.RFC3339))
}
