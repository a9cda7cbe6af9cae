package abtest

import (
	"math"
	"slices"
	"sync"
)

// Accumulator keeps a running Summary per variant, fed one observation at
// a time, for a server that watches an experiment while it runs (a
// guardrail monitor, with SequentialInterval, which stays valid however
// often it is read). Memory is constant per variant. The zero value is
// ready to use, and it is safe for concurrent use.
type Accumulator struct {
	mu    sync.Mutex
	index map[string]int
	names []string
	m     []moments
}

// Add records one observation of variant. A NaN is no observation.
func (a *Accumulator) Add(variant string, value float64) {
	if math.IsNaN(value) {
		return
	}
	a.mu.Lock()
	i, ok := a.index[variant]
	if !ok {
		if a.index == nil {
			a.index = make(map[string]int)
		}
		i = len(a.names)
		a.index[variant] = i
		a.names = append(a.names, variant)
		a.m = append(a.m, moments{})
	}
	a.m[i].add(value)
	a.mu.Unlock()
}

// Summary returns variant's count, mean and variance so far: N 0 and NaNs
// for a variant never seen.
func (a *Accumulator) Summary(variant string) Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.index[variant]; ok {
		return a.m[i].summary()
	}
	return moments{}.summary()
}

// Variants returns the variants seen, in the order they were first added.
func (a *Accumulator) Variants() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.names)
}

// Reset forgets every observation.
func (a *Accumulator) Reset() {
	a.mu.Lock()
	a.index, a.names, a.m = nil, nil, nil
	a.mu.Unlock()
}
