package feature

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/baton-ml/baton/internal/stat"
)

// profileSize is how many quantiles of a numeric feature a computation
// keeps for the next one's drift check: enough to place deciles within a
// tenth of a percent, small enough to keep in the store.
const profileSize = 1001

// Profile is a compact picture of one feature's values in a computation.
type Profile struct {
	Rows      int       `json:"rows"`
	NotNull   int       `json:"not_null"`
	Quantiles []float64 `json:"quantiles,omitempty"`
}

// Result is one check's outcome.
type Result struct {
	Feature string  `json:"feature"`
	Check   string  `json:"check"`
	Action  string  `json:"action"`
	Value   float64 `json:"value"`
	Passed  bool    `json:"passed"`
	Detail  string  `json:"detail"`
}

// Report is the quality report of one batch computation.
type Report struct {
	Status  string             `json:"status"` // passed, warned or blocked
	Rows    int                `json:"rows"`
	Metrics map[string]Quality `json:"metrics"`
	Checks  []Result           `json:"checks"`
}

// Quality is one feature's measured quality.
type Quality struct {
	NotNullRate float64  `json:"not_null_rate"`
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
	Mean        *float64 `json:"mean,omitempty"`
	PSI         *float64 `json:"psi,omitempty"`
}

// profile measures a column and keeps its quantiles.
func profile(c *Column) (Profile, Quality, []float64) {
	p := Profile{Rows: len(c.Values)}
	var nums []float64
	for _, v := range c.Values {
		if v.Kind == KindNull {
			continue
		}
		p.NotNull++
		if v.Kind == KindNum {
			nums = append(nums, v.Num)
		}
	}
	m := Quality{}
	if p.Rows > 0 {
		m.NotNullRate = float64(p.NotNull) / float64(p.Rows)
	}
	if len(nums) > 0 {
		slices.Sort(nums)
		lo, hi := nums[0], nums[len(nums)-1]
		sum := 0.0
		for _, x := range nums {
			sum += x
		}
		mean := sum / float64(len(nums))
		m.Min, m.Max, m.Mean = &lo, &hi, &mean
		p.Quantiles = make([]float64, profileSize)
		for i := range p.Quantiles {
			p.Quantiles[i] = stat.Quantile(nums, float64(i)/float64(profileSize-1))
		}
	}
	return p, m, nums
}

// CheckQuality runs every column's quality gates. prev holds the profiles of the
// previous computation of each feature (missing: no drift check yet).
func CheckQuality(cols []Column, prev map[string]Profile) (Report, map[string]Profile) {
	r := Report{Status: "passed", Metrics: map[string]Quality{}}
	profiles := map[string]Profile{}
	complete := 0
	if len(cols) > 0 {
		r.Rows = len(cols[0].Values)
	}
	for row := range r.Rows {
		all := true
		for _, c := range cols {
			if c.Values[row].Kind == KindNull {
				all = false
				break
			}
		}
		if all {
			complete++
		}
	}
	for i := range cols {
		c := &cols[i]
		f := c.Feature
		p, m, nums := profile(c)
		profiles[f.Name] = p
		if ref, ok := prev[f.Name]; ok && len(ref.Quantiles) > 0 && len(nums) > 0 {
			psi := stat.PSISorted(ref.Quantiles, nums)
			m.PSI = &psi
		}
		r.Metrics[f.Name] = m
		for _, q := range f.Quality {
			res := Result{Feature: f.Name, Check: q.Check, Action: q.Action, Passed: true}
			switch q.Check {
			case CheckNotNullRate:
				res.Value = m.NotNullRate
				res.Passed = m.NotNullRate >= *q.Min
				res.Detail = fmt.Sprintf("%.4f of %d rows are not null; at least %g wanted", m.NotNullRate, p.Rows, *q.Min)
			case CheckRowCompleteness:
				rate := 0.0
				if r.Rows > 0 {
					rate = float64(complete) / float64(r.Rows)
				}
				res.Value = rate
				res.Passed = rate >= *q.Min
				res.Detail = fmt.Sprintf("%.4f of %d rows have every feature; at least %g wanted", rate, r.Rows, *q.Min)
			case CheckRange:
				out := 0
				for _, x := range nums {
					if q.Min != nil && x < *q.Min || q.Max != nil && x > *q.Max {
						out++
					}
				}
				res.Value = float64(out)
				res.Passed = out == 0
				res.Detail = fmt.Sprintf("%d of %d values outside %s", out, len(nums), bounds(q.Min, q.Max))
			case CheckDrift:
				if m.PSI == nil {
					res.Detail = "no previous computation to compare with; passes"
					break
				}
				res.Value = *m.PSI
				res.Passed = *m.PSI <= *q.Max
				res.Detail = fmt.Sprintf("PSI %.4f against the previous computation; at most %g allowed", *m.PSI, *q.Max)
			}
			if !res.Passed {
				if q.Action == ActionBlock {
					r.Status = "blocked"
				} else if r.Status == "passed" {
					r.Status = "warned"
				}
			}
			r.Checks = append(r.Checks, res)
		}
	}
	return r, profiles
}

func bounds(lo, hi *float64) string {
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("[%g, %g]", *lo, *hi)
	case lo != nil:
		return fmt.Sprintf("[%g, +inf)", *lo)
	case hi != nil:
		return fmt.Sprintf("(-inf, %g]", *hi)
	}
	return "(-inf, +inf)"
}

// Text renders the report for people: the failed checks first.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "quality %s over %d rows\n", r.Status, r.Rows)
	checks := slices.Clone(r.Checks)
	slices.SortStableFunc(checks, func(a, b Result) int {
		switch {
		case !a.Passed && b.Passed:
			return -1
		case a.Passed && !b.Passed:
			return 1
		}
		return 0
	})
	for _, c := range checks {
		mark := "ok  "
		if !c.Passed {
			mark = "FAIL"
			if c.Action == ActionWarn {
				mark = "WARN"
			}
		}
		fmt.Fprintf(&b, "  %s %s %s (%s): %s\n", mark, c.Feature, c.Check, c.Action, c.Detail)
	}
	return b.String()
}

// JSON returns v as JSON, or {} if it cannot be encoded.
func toJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}
