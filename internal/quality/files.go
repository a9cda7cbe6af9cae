package quality

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// Signals are the rows of a signals file: title, then numeric columns
// (bitrate_kbps,vmaf,rebuffer_rate,startup_ms,audio_lufs,subtitle_coverage
// and any others), one row per title.
type Signals struct {
	File   string
	Names  []string
	Titles []string
	values []float64 // row-major
}

// Row is title i's values, in the order of Names.
func (s *Signals) Row(i int) []float64 {
	p := len(s.Names)
	return s.values[i*p : (i+1)*p]
}

// signalRange is the values a signal can physically take: a value
// outside is a broken measurement, and scoring it would extrapolate the
// model far past anything it was fitted on (a negative bitrate scored
// 10.9 on the 1–5 scale, a bitrate of 1e300 scored −30).
type signalRange struct {
	lo, hi float64
	openLo bool // lo itself is out
	rule   string
}

func (r signalRange) has(v float64) bool {
	if r.openLo && v <= r.lo {
		return false
	}
	return v >= r.lo && v <= r.hi
}

// signalRanges are the known signals' ranges; another column need only
// be a finite number.
var signalRanges = map[string]signalRange{
	// 1 Gbit/s is past any delivered stream (uncompressed 4K60 is 12 Gbit/s, but nobody streams it).
	"bitrate_kbps": {lo: 0, hi: 1e6, openLo: true, rule: "must be above 0 and at most 1000000 kbps"},
	"vmaf":         {lo: 0, hi: 100, rule: "must be from 0 to 100"},
	// The share of playing time spent rebuffering.
	"rebuffer_rate": {lo: 0, hi: 1, rule: "must be a share from 0 to 1"},
	// Ten minutes: a start that takes longer is a failed start, not a slow one.
	"startup_ms": {lo: 0, hi: 600_000, rule: "must be from 0 to 600000 ms"},
	// −70 LUFS is BS.1770's absolute gate (nothing quieter is measured);
	// +10 is above a full-scale multichannel mix.
	"audio_lufs":        {lo: -70, hi: 10, rule: "must be from -70 to 10 LUFS"},
	"subtitle_coverage": {lo: 0, hi: 1, rule: "must be a share from 0 to 1"},
}

// ReadSignals reads a signals file; name names it in errors. Every cell
// but the title must be a finite number, within its physical range for
// the known signals (signalRanges); a title twice is an error.
func ReadSignals(r io.Reader, name string) (*Signals, error) {
	tr := csvtable.NewReader(r, name)
	header, hline, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return nil, err
	}
	if len(header) < 2 || header[0] != "title" {
		return nil, &csvtable.InputError{File: name, Line: hline, Err: errors.New("the header must be title, then one column per signal")}
	}
	s := &Signals{File: name, Names: slices.Clone(header[1:])}
	seen := map[string]int{}
	for {
		f, line, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		t := string(f[0])
		if t == "" {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "title", Err: errors.New("empty title")}
		}
		if prev, ok := seen[t]; ok {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "title", Err: fmt.Errorf("title %q is also on line %d", t, prev)}
		}
		seen[t] = line
		s.Titles = append(s.Titles, t)
		for j, c := range f[1:] {
			v, ok := csvtable.ParseFloat(c)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &csvtable.InputError{File: name, Line: line, Column: header[j+1], Err: fmt.Errorf("%q is not a finite number", c)}
			}
			if r, known := signalRanges[header[j+1]]; known && !r.has(v) {
				return nil, &csvtable.InputError{File: name, Line: line, Column: header[j+1],
					Err: fmt.Errorf("title %q: %s %s: %s", t, header[j+1], c, r.rule)}
			}
			s.values = append(s.values, v)
		}
	}
	return s, nil
}

// ReadRatings reads title,rating (a finite number); a title twice is an
// error.
func ReadRatings(r io.Reader, name string) (map[string]float64, error) {
	tr := csvtable.NewReader(r, name)
	header, hline, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return nil, err
	}
	if len(header) != 2 || header[0] != "title" || header[1] != "rating" {
		return nil, &csvtable.InputError{File: name, Line: hline, Err: fmt.Errorf("the header must be title,rating, not %s", strings.Join(header, ","))}
	}
	out := map[string]float64{}
	lines := map[string]int{}
	for {
		f, line, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		t := string(f[0])
		if t == "" {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "title", Err: errors.New("empty title")}
		}
		if prev, ok := lines[t]; ok {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "title", Err: fmt.Errorf("title %q is also on line %d", t, prev)}
		}
		v, ok := csvtable.ParseFloat(f[1])
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "rating", Err: fmt.Errorf("%q is not a finite number", f[1])}
		}
		lines[t] = line
		out[t] = v
	}
}

// The scores file: title,score,flagged,reasons (reasons joined by "; ").
const scoresHeader = "title,score,flagged,reasons"

// WriteScores writes scores as CSV.
func WriteScores(w io.Writer, scores []Score) error {
	var b bytes.Buffer
	b.WriteString(scoresHeader + "\n")
	for _, s := range scores {
		fmt.Fprintf(&b, "%s,%s,%t,%s\n", csvField(s.Title), strconv.FormatFloat(s.Score, 'f', 4, 64), s.Flagged, csvField(strings.Join(s.Reasons, "; ")))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// ReadScores reads a scores file written by WriteScores.
func ReadScores(r io.Reader, name string) ([]Score, error) {
	tr := csvtable.NewReader(r, name)
	header, hline, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return nil, err
	}
	if strings.Join(header, ",") != scoresHeader {
		return nil, &csvtable.InputError{File: name, Line: hline, Err: fmt.Errorf("the header must be %s", scoresHeader)}
	}
	var out []Score
	for {
		f, line, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		v, ok := csvtable.ParseFloat(f[1])
		if !ok {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "score", Err: fmt.Errorf("%q is not a number", f[1])}
		}
		fl, err := strconv.ParseBool(string(f[2]))
		if err != nil {
			return nil, &csvtable.InputError{File: name, Line: line, Column: "flagged", Err: fmt.Errorf("%q is not true or false", f[2])}
		}
		s := Score{Title: string(f[0]), Score: v, Flagged: fl, Reasons: []string{}}
		if len(f[3]) > 0 {
			s.Reasons = strings.Split(string(f[3]), "; ")
		}
		out = append(out, s)
	}
}

// Merge joins shard outputs: a title in two shards is an error naming
// both files. The result is sorted by title.
func Merge(parts map[string][]Score) ([]Score, error) {
	from := map[string]string{}
	var all []Score
	files := make([]string, 0, len(parts))
	for f := range parts {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		for _, s := range parts[f] {
			if prev, ok := from[s.Title]; ok {
				return nil, fault.Invalidf("shards", "title %q is in %s and in %s: the shards overlap", s.Title, prev, f)
			}
			from[s.Title] = f
			all = append(all, s)
		}
	}
	slices.SortFunc(all, func(a, b Score) int { return strings.Compare(a.Title, b.Title) })
	return all, nil
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\r\n") || strings.TrimSpace(s) != s {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// ReadFile opens path and reads it with read; a missing file is invalid
// input naming the path.
func ReadFile[T any](path string, read func(io.Reader, string) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fault.Wrap(fault.Invalid, err)
	}
	defer f.Close()
	return read(f, path)
}
