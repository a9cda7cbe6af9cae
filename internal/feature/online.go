package feature

import (
	"context"
	"slices"
	"sync"
)

// OnlineStore is the online store: the recent events of each (source,
// key) that window aggregates read. Keeping events rather than finished
// values makes a look-up exact at any time in the retention (a window's
// value changes as events leave it, not only as they arrive), and lets the
// same aggregate code serve both paths. The embedded store keeps them in memory and is
// rebuilt from the event log on start (Memory); Redis keeps them at scale
// (package online, whose Open opens either from a URL).
type OnlineStore interface {
	// Apply adds logged events (Seq set) of one source. retention is how
	// long events matter: older ones may be dropped.
	Apply(ctx context.Context, source string, evs []Event, retention int64) error
	// Range returns the events of (source, key) with from < Time <= to,
	// sorted by (Time, Seq).
	Range(ctx context.Context, source, key string, from, to int64) ([]Event, error)
	// Reset drops everything of a source (its field layout changed: the
	// log is applied again).
	Reset(ctx context.Context, source string) error
	Close() error
}

// Memory is the embedded online store.
type Memory struct {
	mu      sync.RWMutex
	sources map[string]*memSource
}

type memSource struct {
	mu     sync.RWMutex
	keys   map[string]*series
	newest int64
}

type series struct{ evs []Event }

// NewMemory returns an empty embedded online store.
func NewMemory() *Memory { return &Memory{sources: map[string]*memSource{}} }

func (m *Memory) source(name string) *memSource {
	m.mu.RLock()
	s := m.sources[name]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.sources[name]; s == nil {
		s = &memSource{keys: map[string]*series{}}
		m.sources[name] = s
	}
	return s
}

// Apply implements OnlineStore.
func (m *Memory) Apply(_ context.Context, source string, evs []Event, retention int64) error {
	s := m.source(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range evs {
		ev := &evs[i]
		if ev.Time > s.newest {
			s.newest = ev.Time
		}
		sr := s.keys[ev.Key]
		if sr == nil {
			sr = &series{}
			s.keys[ev.Key] = sr
		}
		sr.insert(*ev)
		// Trim on write, relative to the source's newest event: a key
		// that stops receiving events keeps its last window, which is what
		// a look-up "as of" its last event needs; Range bounds what counts.
		if cut := s.newest - retention; sr.evs[0].Time <= cut {
			n := searchTime(sr.evs, cut)
			sr.evs = slices.Delete(sr.evs, 0, n)
		}
	}
	return nil
}

// insert keeps the series sorted by (Time, Seq); in-order events append.
func (sr *series) insert(ev Event) {
	n := len(sr.evs)
	if n == 0 || less(&sr.evs[n-1], &ev) {
		sr.evs = append(sr.evs, ev)
		return
	}
	i, _ := slices.BinarySearchFunc(sr.evs, ev, func(a, b Event) int {
		if less(&a, &b) {
			return -1
		}
		if a.Time == b.Time && a.Seq == b.Seq {
			return 0
		}
		return 1
	})
	sr.evs = slices.Insert(sr.evs, i, ev)
}

func less(a, b *Event) bool { return a.Time < b.Time || a.Time == b.Time && a.Seq < b.Seq }

// Range implements OnlineStore.
func (m *Memory) Range(_ context.Context, source, key string, from, to int64) ([]Event, error) {
	s := m.source(source)
	s.mu.RLock()
	defer s.mu.RUnlock()
	sr := s.keys[key]
	if sr == nil {
		return nil, nil
	}
	lo, hi := searchTime(sr.evs, from), searchTime(sr.evs, to)
	return slices.Clone(sr.evs[lo:hi]), nil
}

// Reset implements OnlineStore.
func (m *Memory) Reset(_ context.Context, source string) error {
	m.mu.Lock()
	delete(m.sources, source)
	m.mu.Unlock()
	return nil
}

// Close implements OnlineStore.
func (m *Memory) Close() error { return nil }
