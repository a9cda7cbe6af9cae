package experiment

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/baton-ml/baton/internal/store"
)

// recordingStore keeps what an ingest stores; nothing else of the store
// is called.
type recordingStore struct {
	store.ExperimentStore
	exps []store.Exposure
	evs  []store.MetricEvent
}

func (r *recordingStore) AddExposures(_ context.Context, es []store.Exposure) (int, error) {
	r.exps = append(r.exps, es...)
	return len(es), nil
}

func (r *recordingStore) AddMetricEvents(_ context.Context, ms []store.MetricEvent) error {
	r.evs = append(r.evs, ms...)
	return nil
}

// fuzzExperiment has variants a and b, metric m and guardrail g.
var fuzzExperiment = Loaded{Version: 3, Status: store.ExperimentRunning, Spec: Spec{Name: "x", Metrics: []string{"m"},
	Guardrails: []Guardrail{{Metric: "g", Direction: "increase"}},
	Variants:   []Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}}}}

// csvDataRows counts the data rows of a CSV as encoding/csv reads them (the
// header not counted), or -1 if it cannot be read to its end.
func csvDataRows(body string) int {
	cr := csv.NewReader(strings.NewReader(body))
	cr.FieldsPerRecord = -1
	n := -1
	for {
		_, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			return -1
		}
		n++
	}
}

// storable says what a time must be to be stored and shown: set, and
// within the years JSON (RFC 3339) can write, as the store gives it back
// (in UTC).
func storable(at time.Time) error {
	if at.IsZero() {
		return errors.New("zero time")
	}
	_, err := json.Marshal(at.UTC())
	return err
}

var fuzzNow = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)

// FuzzReadExposures: whatever the CSV, reading it does not panic, every
// data row is either read or rejected, and what the ingest then stores has
// a unit (UTF-8), a variant of the experiment, its name and version, and a
// time that can be written.
func FuzzReadExposures(f *testing.F) {
	for _, seed := range []string{
		"unit,variant,at\nu1,a,2026-01-01T00:00:00Z\nu2,b,1700000000\nu3,a,\n",
		"variant,unit\nb,u1\n",
		"unit,variant\n,a\nu2,c\n\"u,3\",a\n",
		"unit,variant,at\nu1,a,yesterday\nu2,a,1.5\n",
		// Times JSON cannot write (they made the report fail) and numbers
		// with no conversion to a time.
		"unit,variant,at\n00,a,1000000000000\nu2,b,-100000000000\nu3,a,NaN\nu4,b,-Inf\nu5,a,1e300\nu6,a,0000-01-01T00:00:00+01:00\nu7,b,253402300799\n",
		"unit\nu1\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var res IngestResult
		out, err := ReadExposures(strings.NewReader(body), &res)
		if err != nil {
			if out != nil || res.Rejected != 0 {
				t.Fatalf("an error (%v) with %d exposures and %d rejected", err, len(out), res.Rejected)
			}
			return
		}
		if rows := csvDataRows(body); rows != len(out)+res.Rejected {
			t.Fatalf("%d data rows: %d read, %d rejected", rows, len(out), res.Rejected)
		}
		st := &recordingStore{}
		got, err := IngestExposures(context.Background(), st, fuzzExperiment, out, fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		if got.Accepted != len(st.exps) || got.Accepted+got.Rejected != len(out) {
			t.Fatalf("%d read: %d accepted, %d rejected, %d stored", len(out), got.Accepted, got.Rejected, len(st.exps))
		}
		for _, e := range st.exps {
			switch {
			case e.Unit == "" || !utf8.ValidString(e.Unit):
				t.Fatalf("stored without a unit: %+v", e)
			case e.Variant != "a" && e.Variant != "b":
				t.Fatalf("stored with variant %q: %+v", e.Variant, e)
			case e.Experiment != "x" || e.Version != 3:
				t.Fatalf("stored under %s version %d", e.Experiment, e.Version)
			}
			if err := storable(e.At); err != nil {
				t.Fatalf("stored at %v: %v", e.At, err)
			}
		}
	})
}

// FuzzReadMetrics: as FuzzReadExposures, for metric events: what is stored
// has a unit, a metric of the experiment (a metric or a guardrail), a
// finite value and a time that can be written.
func FuzzReadMetrics(f *testing.F) {
	for _, seed := range []string{
		"unit,metric,value,at\nu1,m,1.5,2026-01-01T00:00:00Z\nu2,g,-3,1700000000\nu3,m,0,\n",
		"value,metric,unit\n2,m,u1\n",
		"unit,metric,value\n,m,1\nu2,other,1\nu3,m,NaN\nu4,m,Inf\nu5,m,x\n",
		"unit,metric\nu1,m\n",
		"unit,metric,value,at\nu1,m,1,1000000000000\nu2,g,1,NaN\nu3,m,1,9999-12-31T23:59:59-01:00\nu4,m,1,-62167219200\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var res IngestResult
		out, err := ReadMetrics(strings.NewReader(body), &res)
		if err != nil {
			if out != nil || res.Rejected != 0 {
				t.Fatalf("an error (%v) with %d events and %d rejected", err, len(out), res.Rejected)
			}
			return
		}
		if rows := csvDataRows(body); rows != len(out)+res.Rejected {
			t.Fatalf("%d data rows: %d read, %d rejected", rows, len(out), res.Rejected)
		}
		st := &recordingStore{}
		got, err := IngestMetrics(context.Background(), st, fuzzExperiment, out, fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		if got.Accepted != len(st.evs) || got.Accepted+got.Rejected != len(out) {
			t.Fatalf("%d read: %d accepted, %d rejected, %d stored", len(out), got.Accepted, got.Rejected, len(st.evs))
		}
		for _, e := range st.evs {
			switch {
			case e.Unit == "" || !utf8.ValidString(e.Unit):
				t.Fatalf("stored without a unit: %+v", e)
			case !slices.Contains([]string{"m", "g"}, e.Metric):
				t.Fatalf("stored with metric %q: %+v", e.Metric, e)
			case math.IsNaN(e.Value) || math.IsInf(e.Value, 0):
				t.Fatalf("stored value %v", e.Value)
			case e.Experiment != "x":
				t.Fatalf("stored under %s", e.Experiment)
			}
			if err := storable(e.At); err != nil {
				t.Fatalf("stored at %v: %v", e.At, err)
			}
		}
	})
}

// TestIngestRefusesTimesJSONCannotWrite: exposure and metric times outside
// the years 0000 to 9999, and numbers that are no time at all (NaN, 1e300),
// are rejected as malformed, from CSV (read) and from any source (ingest).
// Before, FuzzReadExposures found them stored: ten exposures at
// -100000000000 made the experiment's report impossible to write as JSON.
func TestIngestRefusesTimesJSONCannotWrite(t *testing.T) {
	t.Parallel()
	var res IngestResult
	es, err := ReadExposures(strings.NewReader("unit,variant,at\n"+
		"u1,a,1000000000000\nu2,a,-100000000000\nu3,a,NaN\nu4,a,-Inf\nu5,a,1e300\n"+
		"u6,a,0000-01-01T00:00:00+01:00\nu7,a,253402300799\nu8,b,-62167219200\n"), &res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 5 || res.ByReason["malformed"] != 5 || len(es) != 3 {
		t.Fatalf("read: %d exposures, %+v", len(es), res)
	}
	st := &recordingStore{}
	got, err := IngestExposures(context.Background(), st, fuzzExperiment, es, fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Accepted != 2 || got.ByReason["malformed"] != 1 || !strings.Contains(strings.Join(got.Reasons, ""), "exposure 1: time 0000-01-01") {
		t.Fatalf("ingest: %+v", got)
	}
	if st.exps[0].Unit != "u7" || st.exps[1].Unit != "u8" {
		t.Fatalf("stored %+v", st.exps)
	}
	ms := []store.MetricEvent{{Unit: "u1", Metric: "m", Value: 1, At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, {Unit: "u2", Metric: "m", Value: 1}}
	gotM, err := IngestMetrics(context.Background(), st, fuzzExperiment, ms, fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	if gotM.Accepted != 1 || gotM.ByReason["malformed"] != 1 || st.evs[0].Unit != "u2" {
		t.Fatalf("metric ingest: %+v, stored %+v", gotM, st.evs)
	}
}

// TestDecodeJSONNothingAfter: an API body of exposures or metric events is
// one JSON array and nothing after it but space. Before, a stray "]" or
// "}" after the array was taken (json.Decoder.More is false before a
// closing delimiter); FuzzHTTPBodies's shape check showed it.
func TestDecodeJSONNothingAfter(t *testing.T) {
	t.Parallel()
	for _, tail := range []string{"]", "}", " ]\n", "[]", "x"} {
		if es, err := DecodeExposuresJSON([]byte(`[{"unit": "u", "variant": "a"}]` + tail)); err == nil {
			t.Errorf("exposures with %q after the array: %+v", tail, es)
		}
		if ms, err := DecodeMetricsJSON([]byte(`[{"unit": "u", "metric": "m", "value": 1}]` + tail)); err == nil {
			t.Errorf("metric events with %q after the array: %+v", tail, ms)
		}
	}
	if es, err := DecodeExposuresJSON([]byte(" [{\"unit\": \"u\", \"variant\": \"a\"}] \n")); err != nil || len(es) != 1 {
		t.Fatalf("an array with space around it: %+v %v", es, err)
	}
}
