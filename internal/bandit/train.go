package bandit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Fit trains a policy from logged events: LinUCB's online update replayed
// in time order (stable, so ties keep the log's order), each event
// teaching the model of the arm it chose (see Learner.Observe). The
// logging policy's propensities are not used: a ridge regression per arm
// is consistent under any logging policy that chose by the context alone.
func Fit(ctx context.Context, events []Event, fz *Featurizer, params Params) (*Policy, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w to train on", ErrNoEvents)
	}
	l, err := NewLearner(fz, params)
	if err != nil {
		return nil, err
	}
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return events[order[a]].At.Before(events[order[b]].At) })
	for n, i := range order {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		e := &events[i]
		if err := l.Observe(e.Decision, e.Reward); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Where, err)
		}
	}
	return l.Policy()
}

// InferOptions shape the encoding InferFeaturizer reads from logs.
type InferOptions struct {
	// Buckets cuts a numeric attribute at these bounds (one-hot) instead
	// of using it as a number: hour of day, tenure in days.
	Buckets map[string][]float64
	// Ignore leaves attributes out (ids, free text).
	Ignore []string
	// MaxValues bounds a category's values (default 64): more is likely an
	// id, which one-hot would turn into thousands of columns.
	MaxValues int
}

// InferFeaturizer reads the encoding from the contexts of events: text
// and booleans become categories (their values as seen, sorted), numbers
// become numbers standardized by their mean and standard deviation, or
// buckets when opts says so. An attribute seen with text and numbers is an
// error naming it.
func InferFeaturizer(events []Event, opts InferOptions) (*Featurizer, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w to read the features from", ErrNoEvents)
	}
	maxValues := opts.MaxValues
	if maxValues <= 0 {
		maxValues = 64
	}
	type stats struct {
		text, num   int
		values      map[string]bool
		sum, sumSq  float64
		firstText   string
		firstNumber string
	}
	seen := map[string]*stats{}
	for i := range events {
		for k, v := range events[i].Context {
			if v == nil || slices.Contains(opts.Ignore, k) {
				continue
			}
			s := seen[k]
			if s == nil {
				s = &stats{values: map[string]bool{}}
				seen[k] = s
			}
			switch v.(type) {
			case string, bool:
				c, _ := categoryValue(v)
				if s.text == 0 {
					s.firstText = events[i].Where
				}
				s.text++
				if len(s.values) <= maxValues {
					s.values[c] = true
				}
			default:
				n, err := numberValue(v)
				if err != nil {
					return nil, fmt.Errorf("%s: %w %q: %v", events[i].Where, ErrContext, k, err)
				}
				if s.num == 0 {
					s.firstNumber = events[i].Where
				}
				s.num++
				s.sum += n
				s.sumSq += n * n
			}
		}
	}
	for name := range opts.Buckets {
		if s := seen[name]; s == nil || s.text > 0 {
			return nil, fmt.Errorf("%w %q: bucketed but not a number in the log", ErrContext, name)
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	slices.Sort(names)
	var fs []Feature
	for _, name := range names {
		s := seen[name]
		switch {
		case s.text > 0 && s.num > 0:
			return nil, fmt.Errorf("%w %q: text (first at %s) and numbers (first at %s): ignore it or log one type",
				ErrContext, name, s.firstText, s.firstNumber)
		case s.text > 0:
			if len(s.values) > maxValues {
				return nil, fmt.Errorf("%w %q: more than %d values (an id?): ignore it", ErrContext, name, maxValues)
			}
			vals := make([]string, 0, len(s.values))
			for v := range s.values {
				vals = append(vals, v)
			}
			slices.Sort(vals)
			fs = append(fs, Feature{Name: name, Type: Category, Values: vals})
		case opts.Buckets[name] != nil:
			fs = append(fs, Feature{Name: name, Type: Bucket, Bounds: opts.Buckets[name]})
		default:
			mean := s.sum / float64(s.num)
			sd := math.Sqrt(max(s.sumSq/float64(s.num)-mean*mean, 0))
			if !(sd > 1e-12) {
				sd = 1
			}
			fs = append(fs, Feature{Name: name, Type: Number, Center: mean, Scale: sd})
		}
	}
	return NewFeaturizer(fs)
}
