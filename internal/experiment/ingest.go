package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// IngestResult says what became of a batch of exposures or metric events.
type IngestResult struct {
	Accepted int `json:"accepted"`
	// New counts exposures not seen before (a unit's first exposure
	// counts; repeats are accepted and ignored).
	New      int      `json:"new,omitempty"`
	Rejected int      `json:"rejected"`
	Reasons  []string `json:"reasons,omitempty"`
	// ByReason counts the rejections by kind (no_unit, unknown_variant,
	// unknown_metric, malformed), for metrics.
	ByReason map[string]int `json:"by_reason,omitempty"`
}

const maxReasons = 20

func (r *IngestResult) reject(kind, format string, args ...any) {
	r.Rejected++
	if r.ByReason == nil {
		r.ByReason = map[string]int{}
	}
	r.ByReason[kind]++
	if len(r.Reasons) < maxReasons {
		r.Reasons = append(r.Reasons, fmt.Sprintf(format, args...))
	}
}

// IngestExposures checks exposures against the experiment (variants of
// its current allocation) and stores the good ones; the rest are counted
// and rejected with a reason.
func IngestExposures(ctx context.Context, st store.ExperimentStore, l Loaded, es []store.Exposure, now time.Time) (IngestResult, error) {
	var res IngestResult
	s := l.Spec.WithDefaults()
	ok := make([]store.Exposure, 0, len(es))
	for i, e := range es {
		switch {
		case e.Unit == "":
			res.reject("no_unit", "exposure %d: no unit", i+1)
			continue
		case !utf8.ValidString(e.Unit) || !utf8.ValidString(e.Variant):
			// Stored as is, a unit would not be the same unit when read
			// back as text.
			res.reject("malformed", "exposure %d: unit and variant must be UTF-8", i+1)
			continue
		case !slices.ContainsFunc(s.Variants, func(v Variant) bool { return v.Name == e.Variant }):
			res.reject("unknown_variant", "exposure %d: experiment %s has no variant %q", i+1, s.Name, e.Variant)
			continue
		case !e.At.IsZero() && !writable(e.At):
			res.reject("malformed", "exposure %d: time %s is outside the years 0000 to 9999 (UTC)", i+1, e.At)
			continue
		}
		e.Experiment, e.Version = s.Name, l.Version
		if e.At.IsZero() {
			e.At = now
		}
		ok = append(ok, e)
	}
	n, err := st.AddExposures(ctx, ok)
	if err != nil {
		return res, err
	}
	res.Accepted, res.New = len(ok), n
	return res, nil
}

// IngestMetrics stores metric events of the experiment's metrics and
// guardrails; events of unknown metrics are rejected.
func IngestMetrics(ctx context.Context, st store.ExperimentStore, l Loaded, ms []store.MetricEvent, now time.Time) (IngestResult, error) {
	var res IngestResult
	s := l.Spec.WithDefaults()
	known := slices.Clone(s.Metrics)
	for _, g := range s.Guardrails {
		if !slices.Contains(known, g.Metric) {
			known = append(known, g.Metric)
		}
	}
	ok := make([]store.MetricEvent, 0, len(ms))
	for i, m := range ms {
		switch {
		case m.Unit == "":
			res.reject("no_unit", "event %d: no unit", i+1)
			continue
		case !utf8.ValidString(m.Unit) || !utf8.ValidString(m.Metric):
			res.reject("malformed", "event %d: unit and metric must be UTF-8", i+1)
			continue
		case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
			// One NaN would make every mean, interval and guardrail of
			// the metric NaN, and a NaN guardrail never trips.
			res.reject("not_finite", "event %d: value %v is not a finite number", i+1, m.Value)
			continue
		case !slices.Contains(known, m.Metric):
			res.reject("unknown_metric", "event %d: experiment %s has no metric %q (metrics: %s)", i+1, s.Name, m.Metric, strings.Join(known, ", "))
			continue
		case !m.At.IsZero() && !writable(m.At):
			res.reject("malformed", "event %d: time %s is outside the years 0000 to 9999 (UTC)", i+1, m.At)
			continue
		}
		m.Experiment = s.Name
		if m.At.IsZero() {
			m.At = now
		}
		ok = append(ok, m)
	}
	if err := st.AddMetricEvents(ctx, ok); err != nil {
		return res, err
	}
	res.Accepted = len(ok)
	return res, nil
}

// ReadExposures reads CSV `unit,variant[,at]`; ReadMetrics reads
// `unit,metric,value[,at]`. Rows that do not parse are rejected in res.
func ReadExposures(r io.Reader, res *IngestResult) ([]store.Exposure, error) {
	rows, err := readCSV(r, []string{"unit", "variant"})
	if err != nil {
		return nil, err
	}
	var out []store.Exposure
	for _, row := range rows {
		at, err := optTime(row.get("at"))
		if err != nil {
			res.reject("malformed", "line %d: %v", row.line, err)
			continue
		}
		out = append(out, store.Exposure{Unit: row.get("unit"), Variant: row.get("variant"), At: at})
	}
	return out, nil
}

// ReadMetrics reads metric events from CSV.
func ReadMetrics(r io.Reader, res *IngestResult) ([]store.MetricEvent, error) {
	rows, err := readCSV(r, []string{"unit", "metric", "value"})
	if err != nil {
		return nil, err
	}
	var out []store.MetricEvent
	for _, row := range rows {
		v, err := strconv.ParseFloat(row.get("value"), 64)
		if err != nil {
			res.reject("malformed", "line %d: value %q is not a number", row.line, row.get("value"))
			continue
		}
		at, err := optTime(row.get("at"))
		if err != nil {
			res.reject("malformed", "line %d: %v", row.line, err)
			continue
		}
		out = append(out, store.MetricEvent{Unit: row.get("unit"), Metric: row.get("metric"), Value: v, At: at})
	}
	return out, nil
}

type csvRow struct {
	line int
	cols map[string]int
	rec  []string
}

func (r csvRow) get(name string) string {
	if i, ok := r.cols[name]; ok && i < len(r.rec) {
		return strings.TrimSpace(r.rec[i])
	}
	return ""
}

func readCSV(r io.Reader, need []string) ([]csvRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("a CSV with a header (%s): %w", strings.Join(need, ","), err)
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.TrimSpace(h)] = i
	}
	for _, n := range need {
		if _, ok := cols[n]; !ok {
			return nil, fmt.Errorf("the header has no column %q (it needs %s)", n, strings.Join(need, ", "))
		}
	}
	var out []csvRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		out = append(out, csvRow{line: line, cols: cols, rec: rec})
	}
}

func optTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		// NaN, infinities and numbers past int64 microseconds have no
		// defined conversion; and a time no JSON answer can write breaks
		// the experiment's report.
		if math.IsNaN(f) || f < minUnix || f > maxUnix {
			return time.Time{}, fmt.Errorf("time %q is not unix seconds of the years 0000 to 9999", s)
		}
		return time.UnixMicro(int64(f * 1e6)), nil
	}
	return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor unix seconds", s)
}

// The unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the
// times JSON (RFC 3339) can write.
const minUnix, maxUnix = -62167219200, 253402300799

// writable says whether a time can be written as JSON once stored (the
// store keeps it in UTC).
func writable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// Find returns the stored experiment named name.
func Find(ctx context.Context, st store.ExperimentStore, name string) (Loaded, error) {
	ls, err := Load(ctx, st)
	if err != nil {
		return Loaded{}, err
	}
	for _, l := range ls {
		if l.Spec.Name == name {
			return l, nil
		}
	}
	return Loaded{}, fmt.Errorf("experiment %s: %w", name, store.ErrNotFound)
}

// DecodeExposuresJSON reads an API body of exposures, a JSON array of
// {"unit", "variant", "at"}. A body that does not decode is refused with
// every problem, each naming its JSON field ("[3].at") in user words,
// never Go's type names.
func DecodeExposuresJSON(body []byte) ([]store.Exposure, error) {
	return decodeJSON[store.Exposure](body, "exposures")
}

// DecodeMetricsJSON reads an API body of metric events, a JSON array of
// {"unit", "metric", "value", "at"}, as DecodeExposuresJSON does.
func DecodeMetricsJSON(body []byte) ([]store.MetricEvent, error) {
	return decodeJSON[store.MetricEvent](body, "metric events")
}

func decodeJSON[T any](body []byte, what string) ([]T, error) {
	// encoding/json first: large batches decode fast; only a body it
	// refuses goes through the position-carrying tree for the words.
	var out []T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&out)
	// Nothing but space may follow the array (More is false before a
	// stray "]" or "}", which would pass unseen).
	if err == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) == 0 {
		return out, nil
	}
	if _, terr := flow.Decode("body", body, &out); terr != nil {
		return nil, terr
	}
	return nil, flow.Errors{{File: "body", Msg: fmt.Sprintf("a JSON array of %s, and nothing after it", what)}}
}
