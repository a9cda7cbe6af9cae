package feature

import (
	"bufio"
	"bytes"
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

	"github.com/baton-ml/baton/internal/jsonkey"
)

// Kind is the kind of a field value.
type Kind uint8

// Value kinds; a bool is a number, 0 or 1.
const (
	KindNull Kind = iota
	KindNum
	KindStr
)

// Value is one field of an event.
type Value struct {
	Kind Kind
	Num  float64
	Str  string
}

// Event is one event of a source. Times are unix microseconds.
type Event struct {
	Key  string
	Time int64
	// Ingested is when baton accepted the event; Seq its position in the
	// source's log, which orders events of equal time.
	Ingested int64
	Seq      int64
	// Vals holds the fields in the source's FieldOrder.
	Vals []Value
}

// Rejection is an event refused at ingest, with the reason.
type Rejection struct {
	Source string `json:"source"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
	Raw    string `json:"raw"`
	// At is when baton refused the event, in the dead-letter log; it is
	// left out where it is not known (an ingest's answer).
	At time.Time `json:"at,omitzero"`
}

// maxLine bounds one input line (JSON) or record (CSV).
const maxLine = 1 << 20

// Decoder turns input records into events of one source, rejecting bad ones.
type Decoder struct {
	src   *Source
	key   string
	index map[string]int
}

// NewDecoder decodes events of src, whose entity key field is key.
func NewDecoder(src *Source, key string) *Decoder {
	idx := map[string]int{}
	for i, n := range src.FieldOrder() {
		idx[n] = i
	}
	return &Decoder{src: src, key: key, index: idx}
}

// DecodeJSON decodes one JSON object.
func (d *Decoder) DecodeJSON(line []byte) (Event, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		var x any
		if err := json.Unmarshal(line, &x); err != nil {
			return Event{}, jsonSyntax(err)
		}
		return Event{}, fmt.Errorf("an event is a JSON object such as {%q: ..., %q: ...}, not %s", d.key, d.src.Timestamp, jsonKind(line))
	}
	if !utf8.Valid(line) {
		// encoding/json would turn the bad bytes into U+FFFD, so two
		// different keys could become one entity.
		return Event{}, fmt.Errorf("the event is not valid UTF-8: send JSON in UTF-8")
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&m); err != nil {
		return Event{}, jsonSyntax(err)
	}
	if dec.InputOffset() < int64(len(line)) {
		return Event{}, fmt.Errorf("more after the event's object (byte %d): one event per line", dec.InputOffset()+1)
	}
	if jsonkey.CountTop(line) != len(m) {
		return Event{}, fmt.Errorf("field %q is written twice: give each field once", jsonkey.Duplicate(line))
	}
	// A field the source does not declare would be dropped: refuse the
	// event instead, naming it, so a misspelled field is seen at once.
	var unknown []string
	for name := range m {
		if _, ok := d.index[name]; !ok && name != d.key && name != d.src.Timestamp {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Event{}, &UnknownFieldError{Source: d.src.Name, Fields: unknown, Known: d.declared()}
	}
	ev := Event{Vals: make([]Value, len(d.index))}
	raw, ok := m[d.key]
	if !ok || string(raw) == "null" {
		return Event{}, fmt.Errorf("missing key field %q", d.key)
	}
	k, err := jsonScalar(raw)
	if err != nil || k == "" {
		return Event{}, fmt.Errorf("key field %q: want a non-empty string or number, got %s", d.key, abbrevRaw(string(raw)))
	}
	ev.Key = k
	raw, ok = m[d.src.Timestamp]
	if !ok || string(raw) == "null" {
		return Event{}, fmt.Errorf("missing timestamp field %q", d.src.Timestamp)
	}
	ts, err := jsonScalar(raw)
	if err == nil {
		ev.Time, err = ParseTime(ts)
	}
	if err != nil {
		return Event{}, fmt.Errorf("timestamp field %q: %v", d.src.Timestamp, err)
	}
	for name, i := range d.index {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			continue
		}
		v, err := jsonValue(d.src.Fields[name], raw)
		if err != nil {
			return Event{}, fmt.Errorf("field %q: %v", name, err)
		}
		ev.Vals[i] = v
	}
	return ev, nil
}

// UnknownFieldError refuses an event (or a CSV header) with fields its
// source does not declare.
type UnknownFieldError struct {
	Source string
	Fields []string // the undeclared ones
	Known  []string // what the source declares, key and timestamp first
}

func (e *UnknownFieldError) Error() string {
	q := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		q[i] = strconv.Quote(f)
	}
	what := "unknown field " + q[0]
	if len(q) > 1 {
		what = "unknown fields " + strings.Join(q, ", ")
	}
	return fmt.Sprintf("%s: source %s has %s (declare a field under the source's fields: to keep it)", what, e.Source, strings.Join(e.Known, ", "))
}

// declared lists the fields an event of the source may have.
func (d *Decoder) declared() []string {
	return append([]string{d.key, d.src.Timestamp}, d.src.FieldOrder()...)
}

// jsonSyntax says where a line stopped being JSON, without the decoder's
// words for Go types.
func jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON at byte %d: %v", se.Offset, se)
	}
	return errors.New("not valid JSON: the line ends before the value does")
}

// jsonKind names what a JSON value is, for messages.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "an empty line"
	}
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if b[0] == '-' || b[0] >= '0' && b[0] <= '9' {
		return "a number"
	}
	return "JSON: " + abbrev(string(b))
}

func jsonScalar(raw json.RawMessage) (string, error) {
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), nil
	}
	return "", fmt.Errorf("want a string or a number, got %s", abbrevRaw(string(raw)))
}

func jsonValue(t FieldType, raw json.RawMessage) (Value, error) {
	switch t {
	case String:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, fmt.Errorf("want a string, got %s", abbrevRaw(string(raw)))
		}
		return Value{Kind: KindStr, Str: s}, nil
	case Bool:
		switch string(raw) {
		case "true":
			return Value{Kind: KindNum, Num: 1}, nil
		case "false":
			return Value{Kind: KindNum}, nil
		}
		return Value{}, fmt.Errorf("want true or false, got %s", abbrevRaw(string(raw)))
	default:
		if len(raw) == 0 || raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
			return Value{}, fmt.Errorf("want a number, got %s", abbrevRaw(string(raw)))
		}
		return textValue(t, string(raw))
	}
}

// textValue parses a CSV cell (or a JSON number) as type t.
func textValue(t FieldType, s string) (Value, error) {
	switch t {
	case String:
		return Value{Kind: KindStr, Str: s}, nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, fmt.Errorf("want true or false, got %s", abbrev(s))
		}
		if b {
			return Value{Kind: KindNum, Num: 1}, nil
		}
		return Value{Kind: KindNum}, nil
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("want an integer, got %s", abbrev(s))
		}
		return Value{Kind: KindNum, Num: float64(i)}, nil
	default:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return Value{}, fmt.Errorf("want a finite number, got %s", abbrev(s))
		}
		return Value{Kind: KindNum, Num: f}, nil
	}
}

// ParseTime reads RFC 3339 or unix seconds (fractions allowed) as unix
// microseconds.
func ParseTime(s string) (int64, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMicro(), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e11 {
		// Whole seconds are exact; fractions are rounded to the microsecond.
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i * 1e6, nil
		}
		return int64(math.Round(f * 1e6)), nil
	}
	return 0, fmt.Errorf("%s is neither RFC 3339 nor unix seconds", abbrev(s))
}

// abbrevRaw shortens raw JSON for a message without quoting it again.
func abbrevRaw(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func abbrev(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return strconv.Quote(s)
}

// ReadEvents decodes a whole input, CSV with a header or JSON lines (told
// apart by the first non-blank byte), calling ok for each good event and bad
// for each rejected one. It fails only when the input cannot be read at all.
func (d *Decoder) ReadEvents(r io.Reader, ok func(Event) error, bad func(Rejection) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	first, err := peekNonSpace(br)
	if err != nil {
		return err
	}
	if first == '{' || first == 0 {
		return d.readJSONLines(br, ok, bad)
	}
	return d.readCSV(br, ok, bad)
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			return b, br.UnreadByte()
		}
	}
}

func (d *Decoder) readJSONLines(br *bufio.Reader, ok func(Event) error, bad func(Rejection) error) error {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := d.DecodeJSON(b)
		if err != nil {
			if err := bad(Rejection{Line: line, Reason: err.Error(), Raw: string(b)}); err != nil {
				return err
			}
			continue
		}
		if err := ok(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return nil
}

func (d *Decoder) readCSV(br *bufio.Reader, ok func(Event) error, bad func(Rejection) error) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("CSV header: %w", err)
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.TrimSpace(h)] = i
	}
	var unknown []string
	for _, h := range header {
		h = strings.TrimSpace(h)
		if _, ok := d.index[h]; !ok && h != d.key && h != d.src.Timestamp {
			unknown = append(unknown, h)
		}
	}
	if len(unknown) > 0 {
		return &UnknownFieldError{Source: d.src.Name, Fields: unknown, Known: d.declared()}
	}
	keyCol, hasKey := cols[d.key]
	tsCol, hasTS := cols[d.src.Timestamp]
	if !hasKey {
		return fmt.Errorf("CSV header has no key column %q", d.key)
	}
	if !hasTS {
		return fmt.Errorf("CSV header has no timestamp column %q", d.src.Timestamp)
	}
	fieldCol := make([]int, len(d.index))
	for name, i := range d.index {
		c, ok := cols[name]
		if !ok {
			c = -1
		}
		fieldCol[i] = c
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if err := bad(Rejection{Line: pe.Line, Reason: pe.Err.Error()}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		ev, reason := d.csvEvent(rec, len(header), keyCol, tsCol, fieldCol)
		if reason != "" {
			if err := bad(Rejection{Line: line, Reason: reason, Raw: strings.Join(rec, ",")}); err != nil {
				return err
			}
			continue
		}
		if err := ok(ev); err != nil {
			return err
		}
	}
}

func (d *Decoder) csvEvent(rec []string, width, keyCol, tsCol int, fieldCol []int) (Event, string) {
	if len(rec) != width {
		return Event{}, fmt.Sprintf("%d cells where the header has %d", len(rec), width)
	}
	ev := Event{Key: rec[keyCol], Vals: make([]Value, len(fieldCol))}
	if ev.Key == "" {
		return Event{}, fmt.Sprintf("missing key field %q", d.key)
	}
	if rec[tsCol] == "" {
		return Event{}, fmt.Sprintf("missing timestamp field %q", d.src.Timestamp)
	}
	var err error
	if ev.Time, err = ParseTime(rec[tsCol]); err != nil {
		return Event{}, fmt.Sprintf("timestamp field %q: %v", d.src.Timestamp, err)
	}
	order := d.src.FieldOrder()
	for i, c := range fieldCol {
		if c < 0 || rec[c] == "" {
			continue
		}
		v, err := textValue(d.src.Fields[order[i]], rec[c])
		if err != nil {
			return Event{}, fmt.Sprintf("field %q: %v", order[i], err)
		}
		ev.Vals[i] = v
	}
	return ev, ""
}
