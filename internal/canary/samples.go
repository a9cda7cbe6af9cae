package canary

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ReadSamples reads a CSV file of observations, `metric,value` with that
// header, one observation a row, and returns the values of each metric in
// file order. An empty value or NaN is a missing observation, kept as NaN
// (Judge drops it). Errors name the file (name) and the line.
func ReadSamples(r io.Reader, name string) (map[string][]float64, error) {
	cr := csv.NewReader(r)
	// The row length is checked here, to say what is wrong with it.
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file: want the header line metric,value", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // spreadsheet exports start with a BOM
	}
	if len(header) != 2 || !strings.EqualFold(strings.TrimSpace(header[0]), "metric") ||
		!strings.EqualFold(strings.TrimSpace(header[1]), "value") {
		line, _ := cr.FieldPos(0)
		return nil, fmt.Errorf("%s: line %d: header %q: want metric,value", name, line, strings.Join(header, ","))
	}
	samples := map[string][]float64{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return samples, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 2 {
			return nil, fmt.Errorf("%s: line %d: %d fields: want metric,value", name, line, len(rec))
		}
		metric := strings.TrimSpace(rec[0])
		if metric == "" {
			return nil, fmt.Errorf("%s: line %d: empty metric name", name, line)
		}
		v, err := parseValue(strings.TrimSpace(rec[1]))
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: metric %q: %w", name, line, metric, err)
		}
		samples[metric] = append(samples[metric], v)
	}
}

func parseValue(s string) (float64, error) {
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("value %q is out of range", s)
	case err != nil:
		return 0, fmt.Errorf("value %q is not a number", s)
	case math.IsInf(v, 0):
		// An infinite observation is a broken measurement, not data; say
		// so rather than drop it silently.
		return 0, fmt.Errorf("value %q is not finite", s)
	}
	return v, nil
}
