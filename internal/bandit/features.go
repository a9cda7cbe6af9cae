package bandit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// FeatureType is how an attribute becomes columns of the context vector.
type FeatureType string

// The feature types.
const (
	// Category: one column per known value (one-hot). A value not in the
	// list, or a missing attribute, is all zeros: the arm's intercept
	// stands for it.
	Category FeatureType = "category"
	// Bucket: a number cut at Bounds, one column per bucket (one-hot):
	// v < Bounds[0] is the first, Bounds[i-1] <= v < Bounds[i] the i-th,
	// v >= the last bound the last. Missing is all zeros. Hour of day and
	// tenure are buckets: their effect is not linear.
	Bucket FeatureType = "bucket"
	// Number: one column, (v − Center) / Scale. Missing is 0 (the center).
	Number FeatureType = "number"
)

// Feature is one named attribute's encoding.
type Feature struct {
	Name   string      `json:"name"`
	Type   FeatureType `json:"type"`
	Values []string    `json:"values,omitempty"`
	Bounds []float64   `json:"bounds,omitempty"`
	Center float64     `json:"center,omitempty"`
	Scale  float64     `json:"scale,omitempty"`
}

func (f Feature) width() int {
	switch f.Type {
	case Category:
		return len(f.Values)
	case Bucket:
		return len(f.Bounds) + 1
	}
	return 1
}

// Featurizer turns a context's attributes into the vector the linear
// models read: a constant 1 (every arm's intercept) then each feature's
// columns in order. Attributes it has no feature for are ignored, so a
// logged context may carry more than the policy uses.
type Featurizer struct {
	features []Feature
	offset   []int
	index    []map[string]int // per category feature: value → column
	dim      int
}

// NewFeaturizer checks the features (names unique and non-empty, category
// values unique, bounds finite and increasing, scale positive) and makes a
// featurizer of them.
func NewFeaturizer(features []Feature) (*Featurizer, error) {
	fz := &Featurizer{features: slices.Clone(features), dim: 1}
	seen := map[string]bool{}
	for i, f := range fz.features {
		where := fmt.Sprintf("features[%d]", i)
		if f.Name == "" {
			return nil, fmt.Errorf("%s: %w: the name is empty", where, ErrContext)
		}
		where += " (" + f.Name + ")"
		if seen[f.Name] {
			return nil, fmt.Errorf("%s: %w: the name is given twice", where, ErrContext)
		}
		seen[f.Name] = true
		var idx map[string]int
		switch f.Type {
		case Category:
			if len(f.Values) == 0 {
				return nil, fmt.Errorf("%s: %w: a category needs values", where, ErrContext)
			}
			idx = make(map[string]int, len(f.Values))
			for j, v := range f.Values {
				if _, dup := idx[v]; dup {
					return nil, fmt.Errorf("%s: %w: value %q given twice", where, ErrContext, v)
				}
				idx[v] = j
			}
		case Bucket:
			if len(f.Bounds) == 0 {
				return nil, fmt.Errorf("%s: %w: a bucket needs bounds", where, ErrContext)
			}
			for j, b := range f.Bounds {
				if math.IsNaN(b) || math.IsInf(b, 0) || (j > 0 && b <= f.Bounds[j-1]) {
					return nil, fmt.Errorf("%s: %w: bounds must be finite and increasing", where, ErrContext)
				}
			}
		case Number:
			if !(f.Scale > 0) || math.IsInf(f.Scale, 0) || math.IsNaN(f.Center) || math.IsInf(f.Center, 0) {
				return nil, fmt.Errorf("%s: %w: a number needs a finite center and a positive scale", where, ErrContext)
			}
		default:
			return nil, fmt.Errorf("%s: %w: type %q: use category, bucket or number", where, ErrContext, f.Type)
		}
		fz.offset = append(fz.offset, fz.dim)
		fz.index = append(fz.index, idx)
		fz.dim += f.width()
	}
	return fz, nil
}

// Dim is the length of the vectors Encode writes.
func (fz *Featurizer) Dim() int { return fz.dim }

// Features are the encodings, in column order.
func (fz *Featurizer) Features() []Feature { return slices.Clone(fz.features) }

// Encode writes the vector of attrs into x (of length Dim). Values may be
// strings, booleans or numbers (Go numbers or json.Number); a number
// feature given a string reads it as a number, so attributes typed on a
// command line work.
func (fz *Featurizer) Encode(attrs map[string]any, x []float64) error {
	if len(x) != fz.dim {
		return fmt.Errorf("%w: vector of length %d, want %d", ErrContext, len(x), fz.dim)
	}
	clear(x)
	x[0] = 1
	for i := range fz.features {
		f := &fz.features[i]
		v, ok := attrs[f.Name]
		if !ok || v == nil {
			if f.Type == Number {
				x[fz.offset[i]] = 0
			}
			continue
		}
		switch f.Type {
		case Category:
			s, err := categoryValue(v)
			if err != nil {
				return fmt.Errorf("%w %q: %v", ErrContext, f.Name, err)
			}
			if j, ok := fz.index[i][s]; ok {
				x[fz.offset[i]+j] = 1
			}
		case Bucket:
			n, err := numberValue(v)
			if err != nil {
				return fmt.Errorf("%w %q: %v", ErrContext, f.Name, err)
			}
			j, onBound := slices.BinarySearch(f.Bounds, n)
			if onBound {
				j++ // a value on a bound opens the next bucket
			}
			x[fz.offset[i]+j] = 1
		case Number:
			n, err := numberValue(v)
			if err != nil {
				return fmt.Errorf("%w %q: %v", ErrContext, f.Name, err)
			}
			x[fz.offset[i]] = (n - f.Center) / f.Scale
		}
	}
	return nil
}

func categoryValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case json.Number:
		return v.String(), nil
	}
	if n, err := numberValue(v); err == nil {
		return strconv.FormatFloat(n, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("a %T is not a category value", v)
}

func numberValue(v any) (float64, error) {
	var n float64
	switch v := v.(type) {
	case float64:
		n = v
	case float32:
		n = float64(v)
	case int:
		n = float64(v)
	case int64:
		n = float64(v)
	case int32:
		n = float64(v)
	case uint:
		n = float64(v)
	case uint64:
		n = float64(v)
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v.String())
		}
		n = f
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		n = f
	default:
		return 0, fmt.Errorf("a %T is not a number", v)
	}
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("%v is not a finite number", n)
	}
	return n, nil
}
