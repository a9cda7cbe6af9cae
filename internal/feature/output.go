package feature

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// BuildOptions asks for one batch computation.
type BuildOptions struct {
	Labels   *Labels
	Features []*Feature
	KeyCols  map[string]string
	// Out is the output file: .csv or .parquet. Empty computes and checks
	// without writing (a dry run).
	Out  string
	Kind string // training_set (default) or backfill
	// Parquet writes a .parquet Out: package feature/parquet's Write.
	// It is passed in so that this package does not link a Parquet
	// library; nil refuses a .parquet Out.
	Parquet TableWriter
}

// Table is a computed training set as it is written: the label rows, then
// one column per feature, and Meta (feature versions, row count, quality)
// for a format that keeps metadata.
type Table struct {
	Labels  *Labels
	Columns []Column
	Meta    map[string]any
}

// TableWriter writes a Table in one file format.
type TableWriter func(w io.Writer, t Table) error

// ErrNoParquet is returned (wrapped) by Build for a .parquet output when
// no Parquet writer was given.
var ErrNoParquet = errors.New("no Parquet writer: write .csv instead")

// Built is a finished batch computation.
type Built struct {
	Computation store.FeatureComputation `json:"computation"`
	Report      Report                   `json:"report"`
	Out         string                   `json:"out,omitempty"`
	// FeatureVersion names the feature set's versions in one string, such
	// as "minutes_24h@2,plays_1h@1", for the features_ready signal.
	FeatureVersion string `json:"feature_version"`
}

// ErrBlocked is returned (wrapped) when a quality gate blocked a
// computation: nothing was written or published.
var ErrBlocked = errors.New("blocked by a quality gate")

// Build computes a training set, checks its quality gates against the
// previous computation of each feature, records the computation, and writes
// the output only when no gate blocked it. The output appears whole or not
// at all: it is written beside its final name and renamed into place.
func Build(ctx context.Context, st store.FeatureStore, cat *Catalog, logDir string, o BuildOptions) (Built, error) {
	var b Built
	if o.Kind == "" {
		o.Kind = "training_set"
	}
	format, err := outFormat(o.Out)
	if err != nil {
		return b, err
	}
	if format == "parquet" && o.Parquet == nil {
		return b, fmt.Errorf("write %s: %w", o.Out, ErrNoParquet)
	}
	cols, err := TrainingSet(ctx, cat, logDir, o.Labels, o.Features, o.KeyCols)
	if err != nil {
		return b, err
	}
	prev := map[string]Profile{}
	for _, f := range o.Features {
		c, err := st.LastComputation(ctx, f.Name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return b, err
		}
		var ps map[string]Profile
		if json.Unmarshal(c.Profiles, &ps) == nil {
			if p, ok := ps[f.Name]; ok {
				prev[f.Name] = p
			}
		}
	}
	report, profiles := CheckQuality(cols, prev)
	versions := map[string]int{}
	var fv []string
	for _, f := range o.Features {
		versions[f.Name] = f.Version
		fv = append(fv, f.Name+"@"+strconv.Itoa(f.Version))
	}
	slices.Sort(fv)
	b.Report, b.FeatureVersion = report, strings.Join(fv, ",")
	if report.Status != store.ComputationBlocked && o.Out != "" {
		meta := map[string]any{"feature_versions": versions, "rows": report.Rows, "quality": report.Status}
		write := writeCSV
		if format == "parquet" {
			write = o.Parquet
		}
		t := Table{Labels: o.Labels, Columns: cols, Meta: meta}
		if err := atomicfile.Write(o.Out, func(w io.Writer) error { return write(w, t) }); err != nil {
			return b, err
		}
		b.Out = o.Out
	}
	c, err := st.AddComputation(ctx, store.FeatureComputation{Kind: o.Kind, Features: versions, Rows: int64(report.Rows),
		Status: report.Status, Report: toJSON(report), Profiles: toJSON(profiles), Output: b.Out})
	if err != nil {
		return b, fmt.Errorf("record the computation: %w", err)
	}
	b.Computation = c
	if report.Status == store.ComputationBlocked {
		return b, fmt.Errorf("%w:\n%s", ErrBlocked, report.Text())
	}
	return b, nil
}

func outFormat(out string) (string, error) {
	switch strings.ToLower(filepath.Ext(out)) {
	case ".csv":
		return "csv", nil
	case ".parquet":
		return "parquet", nil
	case "":
		if out == "" {
			return "", nil
		}
	}
	return "", flow.Errors{{Field: "out", Msg: fmt.Sprintf("%q: the output is .csv or .parquet", out)}}
}

// writeCSV writes the label columns, then the features, with a header.
func writeCSV(w io.Writer, t Table) error {
	l, cols := t.Labels, t.Columns
	cw := csv.NewWriter(w)
	header := slices.Clone(l.Header)
	for _, c := range cols {
		header = append(header, c.Feature.Name)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	for r, row := range l.Rows {
		copy(rec, row)
		for i, c := range cols {
			rec[len(row)+i] = cell(c.Values[r], c.Type)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func cell(v Value, t FieldType) string {
	switch v.Kind {
	case KindNum:
		if t == Bool {
			return strconv.FormatBool(v.Num != 0)
		}
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case KindStr:
		return v.Str
	}
	return ""
}
