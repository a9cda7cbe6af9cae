package bandit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/jsonkey"
)

// Decision is the record of one decision, as logged: one JSON line
//
//	{"id":"p1/rows","at":"...","context":{...},"kind":"row_order","arms":[...],
//	 "chosen":[...],"propensity":0.9001,"first_propensity":0.9167,"policy":"lin-..."}
//
// chosen is the artwork id (a string) for an artwork decision and the
// order shown (a list) for a row order. propensity is the probability the
// logging policy gave to exactly what was chosen; first_propensity, for a
// row order, the probability of the row placed first.
//
// A decision written by LogWriter.Page names its page ("page":"p1")
// instead of holding the context: the page's context line holds it once
// for all the page's decisions (see PageLine).
type Decision struct {
	ID      string
	At      time.Time
	Context map[string]any
	// Page is the page whose context line holds Context, when the line
	// named one; "" when the line held its own context.
	Page            string
	Kind            Kind
	Title           string
	Arms            []string
	Chosen          []string // one artwork id, or the row order
	Propensity      float64
	FirstPropensity float64 // row order only
	Policy          string
}

type decisionJSON struct {
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
	Page string    `json:"page,omitempty"`
	// Context is absent when Page names the line that holds it; an empty
	// context of its own is written {}.
	Context         any             `json:"context,omitempty"`
	Kind            Kind            `json:"kind"`
	Title           string          `json:"title,omitempty"`
	Arms            []string        `json:"arms"`
	Chosen          json.RawMessage `json:"chosen"`
	Propensity      float64         `json:"propensity"`
	FirstPropensity float64         `json:"first_propensity,omitempty"`
	Policy          string          `json:"policy"`
}

// MarshalJSON writes the log line's object: with the context, or, when
// the decision names its page, with "page" and no context.
func (d Decision) MarshalJSON() ([]byte, error) {
	var chosen any = d.Chosen
	if d.Kind == Artwork && len(d.Chosen) == 1 {
		chosen = d.Chosen[0]
	}
	c, err := json.Marshal(chosen)
	if err != nil {
		return nil, err
	}
	var ctx any
	if d.Page == "" {
		if d.Context == nil {
			ctx = map[string]any{}
		} else {
			ctx = d.Context
		}
	}
	return json.Marshal(decisionJSON{ID: d.ID, At: d.At, Page: d.Page, Context: ctx, Kind: d.Kind, Title: d.Title, Arms: d.Arms,
		Chosen: c, Propensity: d.Propensity, FirstPropensity: d.FirstPropensity, Policy: d.Policy})
}

// PageLine is a page's context line,
//
//	{"page":"p1","at":"...","context":{...}}
//
// written once before the page's decisions, which name it: a page of 13
// decisions logs its context once, not 13 times.
type PageLine struct {
	Page    string         `json:"page"`
	At      time.Time      `json:"at"`
	Context map[string]any `json:"context"`
}

// MaxReward bounds a reward's magnitude. Training sums rewards times
// context columns and evaluation squares them: one reward near the float
// limit (a finite 1e308) made the trained policy's models and the DR
// estimate infinite, so nothing could be judged or written as JSON.
const MaxReward = 1e6

// CheckReward is the rule a reward value follows, in a log and at the
// API that appends to one: a finite number within ±MaxReward.
func CheckReward(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return errors.New("reward is not a finite number")
	}
	if math.Abs(v) > MaxReward {
		return fmt.Errorf("reward %g: must be within ±%g", v, float64(MaxReward))
	}
	return nil
}

// Reward is a decision's outcome, logged as {"id":..., "reward":1, "at":...}
// and joined to its decision by id.
type Reward struct {
	ID    string    `json:"id"`
	Value float64   `json:"reward"`
	At    time.Time `json:"at"`
}

// check is the rule a decision record follows, read from a log or made by
// Decide: known kind, arms non-empty and unique, chosen among them (a
// permutation of them for a row order), probabilities in (0, 1].
func (d *Decision) check() error {
	if d.ID == "" {
		return errors.New("id is empty")
	}
	if !d.Kind.valid() {
		return fmt.Errorf("kind %q: use row_order or artwork", d.Kind)
	}
	if err := checkArms(d.Kind, d.Title, d.Arms); err != nil {
		return err
	}
	okProb := func(p float64) bool { return p > 0 && p <= 1 }
	if !okProb(d.Propensity) {
		return fmt.Errorf("propensity %v: must be in (0, 1]", d.Propensity)
	}
	switch d.Kind {
	case Artwork:
		if len(d.Chosen) != 1 || !slices.Contains(d.Arms, d.Chosen[0]) {
			return fmt.Errorf("chosen %q is not one of the arms", d.Chosen)
		}
		if d.FirstPropensity != 0 {
			return errors.New("first_propensity is for row orders")
		}
	case RowOrder:
		if len(d.Chosen) != len(d.Arms) {
			return fmt.Errorf("chosen has %d rows, arms %d: it must order them all", len(d.Chosen), len(d.Arms))
		}
		for _, c := range d.Chosen {
			if !slices.Contains(d.Arms, c) {
				return fmt.Errorf("chosen row %q is not one of the arms", c)
			}
		}
		if err := checkArms(RowOrder, "", d.Chosen); err != nil {
			return fmt.Errorf("chosen: %w", err)
		}
		if !okProb(d.FirstPropensity) || d.FirstPropensity < d.Propensity {
			return fmt.Errorf("first_propensity %v: must be in [propensity, 1]", d.FirstPropensity)
		}
	}
	return nil
}

// Event is a decision joined with its reward.
type Event struct {
	Decision
	Reward   float64
	RewardAt time.Time
	Where    string // FILE:LINE of the decision
}

// LineRef is a line of a log: a decision without reward, a reward of no
// decision, a second line for an id.
type LineRef struct {
	File string `json:"file"`
	Line int    `json:"line"`
	ID   string `json:"id"`
}

func (r LineRef) String() string { return r.File + ":" + strconv.Itoa(r.Line) }

// LineError is a line ReadLog could not use, and why.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Is sorts a bad log line as invalid input.
func (e *LineError) Is(target error) bool { return target == fault.Invalid }

// MarshalJSON writes the error as its text, with its place.
func (e *LineError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		File  string `json:"file"`
		Line  int    `json:"line"`
		Error string `json:"error"`
	}{e.File, e.Line, e.Err.Error()})
}

// Log is what the lines read say: the joined events in time order, and
// every line that did not become one, counted by why. Nothing read is
// dropped without being listed here: every line is half an event (a
// decision or its reward), a page's context line, a problem or blank.
type Log struct {
	Lines          int          `json:"lines"`
	Blank          int          `json:"blank"`
	Pages          int          `json:"pages"` // context lines of pages (PageLine)
	Events         []Event      `json:"-"`
	Unrewarded     []LineRef    `json:"unrewarded"`      // decisions with no reward
	UnknownRewards []LineRef    `json:"unknown_rewards"` // rewards whose id no decision has
	Duplicates     []LineRef    `json:"duplicates"`      // a second decision or reward of an id, or context of a page (the first is kept)
	Malformed      []*LineError `json:"malformed"`       // lines that are not a valid decision, reward or page; decisions whose page has no context line
}

// LogReader reads decision and reward lines from any number of files (a
// decision and its reward may be in different files, in any order) and
// joins them by id.
type LogReader struct {
	decisions []Event
	byID      map[string]int
	rewards   map[string]rewardLine
	order     []string // reward ids in reading order, for a stable report
	// pages are the contexts of the pages read, by page id: decisions
	// naming a page share its context (joined in Log, since a file may
	// be read in any order).
	pages map[string]map[string]any
	log   Log
}

type rewardLine struct {
	Reward
	ref LineRef
}

// NewLogReader is a reader with nothing read.
func NewLogReader() *LogReader {
	return &LogReader{byID: map[string]int{}, rewards: map[string]rewardLine{}, pages: map[string]map[string]any{}}
}

// MaxLine is the longest log line read; a longer one is malformed.
const MaxLine = 1 << 20

// Read reads the lines of one file (name is used in LineRefs and errors).
// Only a failure to read is an error: bad lines are collected.
func (lr *LogReader) Read(ctx context.Context, name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for n := 1; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				if len(long) <= MaxLine {
					long = append(long, line...)
				}
			}
			tooLong = len(long) > MaxLine
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		lr.log.Lines++
		if tooLong {
			lr.bad(name, n, fmt.Errorf("line longer than %d bytes", MaxLine))
		} else {
			lr.line(name, n, line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

func (lr *LogReader) bad(file string, line int, err error) {
	lr.log.Malformed = append(lr.log.Malformed, &LineError{File: file, Line: line, Err: err})
}

// logLine is a decision, a reward or a page's context; which one is told
// by the presence of "kind" (decisions), "reward" (rewards) or "page"
// without "kind" (a page's context line).
type logLine struct {
	ID              *string         `json:"id"`
	Page            *string         `json:"page"`
	At              *time.Time      `json:"at"`
	Context         json.RawMessage `json:"context"`
	Kind            *Kind           `json:"kind"`
	Title           *string         `json:"title"`
	Arms            []string        `json:"arms"`
	Chosen          json.RawMessage `json:"chosen"`
	Propensity      *float64        `json:"propensity"`
	FirstPropensity *float64        `json:"first_propensity"`
	Policy          *string         `json:"policy"`
	Reward          *float64        `json:"reward"`
}

// fields is how many keys the line had, as far as decoding can tell (a
// key written with null counts as absent).
func (l *logLine) fields() int {
	n := 0
	for _, set := range []bool{l.ID != nil, l.Page != nil, l.At != nil, l.Context != nil, l.Kind != nil, l.Title != nil, l.Arms != nil,
		l.Chosen != nil, l.Propensity != nil, l.FirstPropensity != nil, l.Policy != nil, l.Reward != nil} {
		if set {
			n++
		}
	}
	return n
}

func (lr *LogReader) line(file string, n int, b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		lr.log.Blank++
		return
	}
	d, rw, pg, err := parseLine(b)
	if err != nil {
		lr.bad(file, n, err)
		return
	}
	ref := LineRef{File: file, Line: n}
	if pg != nil {
		ref.ID = pg.Page
		if _, dup := lr.pages[pg.Page]; dup {
			lr.log.Duplicates = append(lr.log.Duplicates, ref)
			return
		}
		lr.pages[pg.Page] = pg.Context
		lr.log.Pages++
		return
	}
	if d != nil {
		ref.ID = d.ID
		if _, dup := lr.byID[d.ID]; dup {
			lr.log.Duplicates = append(lr.log.Duplicates, ref)
			return
		}
		lr.byID[d.ID] = len(lr.decisions)
		lr.decisions = append(lr.decisions, Event{Decision: *d, Where: ref.String()})
		return
	}
	ref.ID = rw.ID
	if _, dup := lr.rewards[rw.ID]; dup {
		lr.log.Duplicates = append(lr.log.Duplicates, ref)
		return
	}
	lr.rewards[rw.ID] = rewardLine{*rw, ref}
	lr.order = append(lr.order, rw.ID)
}

func parseLine(b []byte) (*Decision, *Reward, *PageLine, error) {
	var l logLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, nil, nil, fmt.Errorf("not a decision, reward or page object: %v", err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return nil, nil, nil, errors.New("text after the JSON object")
	}
	var attrs map[string]any
	if len(l.Context) > 0 && string(l.Context) != "null" {
		if err := json.Unmarshal(l.Context, &attrs); err != nil {
			return nil, nil, nil, fmt.Errorf("context: not an object of attributes: %v", err)
		}
	}
	// A key written twice is refused (encoding/json would keep the last
	// silently). jsonkey.Duplicate walks every token, which would be most
	// of the reading time, so it runs only when a one-pass count of the
	// keys does not match what was decoded: only then can there be one.
	if jsonkey.CountTop(b) != l.fields() || jsonkey.CountTop(l.Context) != len(attrs) || bytes.Count(l.Context, []byte("{")) > 1 {
		if k := jsonkey.Duplicate(b); k != "" {
			return nil, nil, nil, fmt.Errorf("key %q written twice", k)
		}
	}
	if l.Page != nil && l.Kind == nil && l.Reward == nil && l.ID == nil {
		switch {
		case *l.Page == "":
			return nil, nil, nil, errors.New("page is empty")
		case l.At == nil:
			return nil, nil, nil, errors.New("at is missing")
		case l.Context == nil:
			return nil, nil, nil, fmt.Errorf("page %q: context is missing", *l.Page)
		case l.fields() != 3:
			return nil, nil, nil, errors.New("a page's context line holds only page, at and context")
		}
		if attrs == nil {
			attrs = map[string]any{}
		}
		return nil, nil, &PageLine{Page: *l.Page, At: *l.At, Context: attrs}, nil
	}
	if l.ID == nil || *l.ID == "" {
		return nil, nil, nil, errors.New("id is missing")
	}
	if l.At == nil {
		return nil, nil, nil, errors.New("at is missing")
	}
	switch {
	case l.Kind != nil && l.Reward != nil:
		return nil, nil, nil, errors.New("both kind (a decision) and reward (a reward): write them on two lines")
	case l.Reward != nil:
		if l.Context != nil || l.Page != nil || l.Title != nil || l.Arms != nil || l.Chosen != nil || l.Propensity != nil || l.FirstPropensity != nil || l.Policy != nil {
			return nil, nil, nil, errors.New("a reward line holds only id, reward and at")
		}
		if err := CheckReward(*l.Reward); err != nil {
			return nil, nil, nil, err
		}
		return nil, &Reward{ID: *l.ID, Value: *l.Reward, At: *l.At}, nil, nil
	case l.Kind == nil:
		return nil, nil, nil, errors.New("neither a decision (no kind) nor a reward (no reward)")
	}
	if l.Propensity == nil {
		return nil, nil, nil, errors.New("propensity is missing")
	}
	if l.Policy == nil {
		return nil, nil, nil, errors.New("policy is missing")
	}
	d := &Decision{ID: *l.ID, At: *l.At, Context: attrs, Kind: *l.Kind, Arms: l.Arms,
		Propensity: *l.Propensity, Policy: *l.Policy}
	if l.Title != nil {
		d.Title = *l.Title
	}
	if l.Page != nil {
		// The context is the page's, joined in Log.
		if *l.Page == "" {
			return nil, nil, nil, fmt.Errorf("decision %q: page is empty", d.ID)
		}
		if l.Context != nil {
			return nil, nil, nil, fmt.Errorf("decision %q: both page and context: a decision names its page's context line or holds its own", d.ID)
		}
		d.Page = *l.Page
	} else if d.Context == nil {
		d.Context = map[string]any{}
	}
	if l.FirstPropensity != nil {
		d.FirstPropensity = *l.FirstPropensity
	}
	if len(l.Chosen) == 0 {
		return nil, nil, nil, errors.New("chosen is missing")
	}
	if d.Kind == Artwork {
		var c string
		if err := json.Unmarshal(l.Chosen, &c); err != nil {
			return nil, nil, nil, errors.New("chosen: an artwork decision chooses one id (a string)")
		}
		d.Chosen = []string{c}
	} else if err := json.Unmarshal(l.Chosen, &d.Chosen); err != nil {
		return nil, nil, nil, errors.New("chosen: a row order is a list of row ids")
	}
	if err := d.check(); err != nil {
		return nil, nil, nil, fmt.Errorf("decision %q: %w", d.ID, err)
	}
	return d, nil, nil, nil
}

// Log joins what was read: each decision with its page's context and its
// reward, in time order (ties in reading order), and the lines left over.
// A decision naming a page no context line was read for is malformed
// (LogWriter.Page writes a page's lines in one write, so they are never
// split across files, rotated or not), and its reward, if any, a reward
// of no decision.
func (lr *LogReader) Log() *Log {
	out := lr.log
	out.Malformed = slices.Clone(lr.log.Malformed)
	out.Events = make([]Event, 0, len(lr.decisions))
	var orphans map[string]bool
	for _, e := range lr.decisions {
		if e.Page != "" {
			ctx, ok := lr.pages[e.Page]
			if !ok {
				f, l := splitWhere(e.Where)
				out.Malformed = append(out.Malformed, &LineError{File: f, Line: l,
					Err: fmt.Errorf("decision %q: page %q has no context line in the files read (read every file of the log, rotated ones too)", e.ID, e.Page)})
				if orphans == nil {
					orphans = map[string]bool{}
				}
				orphans[e.ID] = true
				continue
			}
			e.Context = ctx
		}
		rw, ok := lr.rewards[e.ID]
		if !ok {
			f, l := splitWhere(e.Where)
			out.Unrewarded = append(out.Unrewarded, LineRef{File: f, Line: l, ID: e.ID})
			continue
		}
		e.Reward, e.RewardAt = rw.Value, rw.At
		out.Events = append(out.Events, e)
	}
	for _, id := range lr.order {
		if _, ok := lr.byID[id]; !ok || orphans[id] {
			out.UnknownRewards = append(out.UnknownRewards, lr.rewards[id].ref)
		}
	}
	slices.SortStableFunc(out.Events, func(a, b Event) int { return a.At.Compare(b.At) })
	return &out
}

func splitWhere(w string) (string, int) {
	i := bytes.LastIndexByte([]byte(w), ':')
	n, _ := strconv.Atoi(w[i+1:])
	return w[:i], n
}

// ReadLogFiles reads and joins the files named, each with its rotated
// files (RotatedFiles): a decision logged before a rotation joins its
// reward logged after it. A file named twice, or named and also rotated
// of another, is read once.
func ReadLogFiles(ctx context.Context, paths ...string) (*Log, error) {
	lr := NewLogReader()
	read := map[string]bool{}
	for _, p := range paths {
		rotated, err := RotatedFiles(p)
		if err != nil {
			return nil, fault.Wrap(fault.Invalid, err)
		}
		for _, name := range append(rotated, p) {
			key := filepath.Clean(name)
			if read[key] {
				continue
			}
			read[key] = true
			f, err := os.Open(name)
			if err != nil {
				return nil, fault.Wrap(fault.Invalid, err)
			}
			err = lr.Read(ctx, name, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return lr.Log(), nil
}

// RotatedName is the name of a log's n-th rotated file (1 the most
// recent): PATH.n, as logrotate names them.
func RotatedName(path string, n int) string { return path + "." + strconv.Itoa(n) }

// RotatedFiles are the rotated files of the log at path that exist
// (PATH.1, PATH.2, ...), oldest first.
func RotatedFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type rotated struct {
		n    int
		name string
	}
	var found []rotated
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() {
			continue
		}
		// Only PATH.N: PATH.tmp or PATH.01 are someone else's files.
		if n, err := strconv.Atoi(rest); err == nil && n > 0 && strconv.Itoa(n) == rest {
			found = append(found, rotated{n, filepath.Join(filepath.Dir(path), e.Name())})
		}
	}
	slices.SortFunc(found, func(a, b rotated) int { return b.n - a.n })
	out := make([]string, len(found))
	for i, r := range found {
		out[i] = r.name
	}
	return out, nil
}

// Problems is the count of lines that did not become an event.
func (l *Log) Problems() int {
	return len(l.Unrewarded) + len(l.UnknownRewards) + len(l.Duplicates) + len(l.Malformed)
}

// LogWriter writes decision and reward lines.
type LogWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewLogWriter writes lines to w; call Flush at the end.
func NewLogWriter(w io.Writer) *LogWriter {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &LogWriter{w: bw, enc: enc}
}

// Decision writes a decision line.
func (lw *LogWriter) Decision(d Decision) error { return lw.enc.Encode(d) }

// Page writes a page's decisions: its context line (PageLine) then each
// decision naming the page instead of repeating the context, so a page's
// context is written once however many decisions it has.
func (lw *LogWriter) Page(p Page) error {
	if p.ID == "" {
		return fmt.Errorf("%w: a page needs an id to be logged", ErrArms)
	}
	ctx := p.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	if err := lw.enc.Encode(PageLine{Page: p.ID, At: p.At, Context: ctx}); err != nil {
		return err
	}
	write := func(d Decision) error {
		d.Page, d.Context = p.ID, nil
		return lw.enc.Encode(d)
	}
	if p.Rows != nil {
		if err := write(*p.Rows); err != nil {
			return err
		}
	}
	for _, d := range p.Artwork {
		if err := write(d); err != nil {
			return err
		}
	}
	return nil
}

// Reward writes a reward line.
func (lw *LogWriter) Reward(r Reward) error { return lw.enc.Encode(r) }

// Flush writes what is buffered.
func (lw *LogWriter) Flush() error { return lw.w.Flush() }
