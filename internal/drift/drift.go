// Package drift compares two tables, a reference and a current one, column
// by column, and says which columns have drifted: PSI and the two-sample
// Kolmogorov–Smirnov test for numeric columns, PSI over categories and the
// chi-square test of independence for string columns (see ml.md, "Drift").
package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/baton-ml/baton/internal/stat"
)

// Defaults of Options.
const (
	DefaultPSIThreshold = 0.2
	DefaultAlpha        = 0.05
)

// Options sets when a column counts as drifted: PSI ≥ PSIThreshold, or the
// test's p-value < Alpha. Zero fields take the defaults.
type Options struct {
	PSIThreshold float64
	Alpha        float64
}

func (o Options) withDefaults() (Options, error) {
	if o.PSIThreshold == 0 {
		o.PSIThreshold = DefaultPSIThreshold
	}
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if !(o.PSIThreshold > 0) || math.IsInf(o.PSIThreshold, 0) {
		return o, fmt.Errorf("PSI threshold %g: want a positive number", o.PSIThreshold)
	}
	if !(o.Alpha > 0 && o.Alpha <= 1) {
		return o, fmt.Errorf("alpha %g: want a p-value threshold in (0, 1]", o.Alpha)
	}
	return o, nil
}

// Report is the outcome of Compare, in the shape of ml.md's JSON.
type Report struct {
	Columns []ColumnReport `json:"columns"`
	// DriftedShare is the fraction of the columns that drifted.
	DriftedShare float64 `json:"drifted_share"`
}

// ColumnReport is one column's statistics. KSStatistic is set for numeric
// columns only; PValue is the KS test's for numeric columns and the
// chi-square test's for string columns.
type ColumnReport struct {
	Name        string   `json:"name"`
	Type        Kind     `json:"type"`
	PSI         float64  `json:"psi"`
	KSStatistic *float64 `json:"ks_statistic,omitempty"`
	PValue      float64  `json:"p_value"`
	Drifted     bool     `json:"drifted"`
}

// Compare computes the drift of every column of cur against the same column
// of ref. Both tables must have the same header, in the same order, and a
// column must be numeric in both or in neither; the error names the file,
// line and column that break this.
func Compare(ref, cur Table, opts Options) (Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	if err := sameHeader(ref, cur); err != nil {
		return Report{}, err
	}
	rep := Report{Columns: make([]ColumnReport, 0, len(ref.Columns))}
	drifted := 0
	for i := range ref.Columns {
		rc, cc := &ref.Columns[i], &cur.Columns[i]
		if err := sameKind(ref, rc, cur, cc); err != nil {
			return Report{}, err
		}
		for _, side := range []struct {
			t Table
			c *Column
		}{{ref, rc}, {cur, cc}} {
			if side.c.Len() == 0 {
				return Report{}, &InputError{File: side.t.Name, Column: side.c.Name, Err: errNoValues}
			}
		}
		cr := ColumnReport{Name: rc.Name, Type: rc.Kind}
		switch rc.Kind {
		case Numeric:
			// Sort each side once for both statistics, on copies: the
			// tables are the caller's.
			a, b := slices.Clone(rc.Nums), slices.Clone(cc.Nums)
			slices.Sort(a)
			slices.Sort(b)
			cr.PSI = stat.PSISorted(a, b)
			d, p := stat.KS2Sorted(a, b)
			cr.KSStatistic, cr.PValue = &d, p
		case String:
			// One count table serves both statistics.
			_, table := stat.CategoryCounts(rc.Strs, cc.Strs)
			cr.PSI = stat.PSICounts(table[0], table[1])
			_, cr.PValue, _ = stat.ChiSquareIndependence(table[:])
		default:
			return Report{}, fmt.Errorf("%s: column %q: unknown type %q", ref.Name, rc.Name, rc.Kind)
		}
		if math.IsNaN(cr.PSI) || math.IsNaN(cr.PValue) {
			// Only a hand-built Table can get here (NaN values, say); a
			// NaN would make the report unencodable as JSON.
			return Report{}, fmt.Errorf("%s: column %q: statistics undefined for these values", cur.Name, rc.Name)
		}
		cr.Drifted = cr.PSI >= opts.PSIThreshold || cr.PValue < opts.Alpha
		if cr.Drifted {
			drifted++
		}
		rep.Columns = append(rep.Columns, cr)
	}
	if len(rep.Columns) > 0 {
		rep.DriftedShare = float64(drifted) / float64(len(rep.Columns))
	}
	return rep, nil
}

var errNoValues = errors.New("no values: every cell is empty")

// sameHeader requires cur's header to be ref's, and names the first place
// where it is not.
func sameHeader(ref, cur Table) error {
	for i := range max(len(ref.Columns), len(cur.Columns)) {
		switch {
		case i >= len(cur.Columns):
			return &InputError{File: cur.Name, Line: 1, Column: ref.Columns[i].Name,
				Err: fmt.Errorf("missing: the reference %s has this column", ref.Name)}
		case i >= len(ref.Columns):
			return &InputError{File: cur.Name, Line: 1, Column: cur.Columns[i].Name,
				Err: fmt.Errorf("not a column of the reference %s", ref.Name)}
		case ref.Columns[i].Name != cur.Columns[i].Name:
			return &InputError{File: cur.Name, Line: 1, Column: cur.Columns[i].Name,
				Err: fmt.Errorf("column %d should be %q, as in the reference %s", i+1, ref.Columns[i].Name, ref.Name)}
		}
	}
	if len(ref.Columns) == 0 {
		return &InputError{File: ref.Name, Err: errors.New("no columns")}
	}
	return nil
}

// sameKind requires a column to be numeric in both tables or in neither:
// comparing numbers in one file with text in the other would report the
// change of type as drift of the values.
func sameKind(ref Table, rc *Column, cur Table, cc *Column) error {
	if rc.Kind == cc.Kind {
		return nil
	}
	t, c, other := cur, cc, ref.Name
	if rc.Kind == String {
		t, c, other = ref, rc, cur.Name
	}
	if c.firstText.value == "" {
		return &InputError{File: t.Name, Column: c.Name, Err: fmt.Errorf("text, but the column is numeric in %s", other)}
	}
	return &InputError{File: t.Name, Line: c.firstText.line, Column: c.Name,
		Err: fmt.Errorf("%q is not a number, but the column is numeric in %s", c.firstText.value, other)}
}
