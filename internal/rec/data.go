package rec

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// Event is what an interaction records.
type Event uint8

// The events: a play, or a play watched to the end.
const (
	Play Event = iota
	Complete
)

func (e Event) String() string {
	if e == Complete {
		return "complete"
	}
	return "play"
}

// Title is a catalog entry, with what serving shows and filters on.
type Title struct {
	ID         string   `json:"title"`
	Name       string   `json:"name"`
	Genres     []string `json:"genres"`
	Creator    string   `json:"creator"`
	NewCreator bool     `json:"new_creator"`
	Released   int64    `json:"released"`          // unix seconds
	Markets    []string `json:"markets,omitempty"` // empty: available everywhere
}

// AvailableIn says whether the title may be shown in market ("" knows no
// market: every title may).
func (t *Title) AvailableIn(market string) bool {
	return market == "" || len(t.Markets) == 0 || slices.Contains(t.Markets, market)
}

// Member is a member of the service; Market "" is unknown.
type Member struct {
	ID     string `json:"member"`
	Market string `json:"market"`
	Joined int64  `json:"joined,omitempty"` // unix seconds, 0 unknown
}

// Interactions are columns, one row per interaction, indexes into a
// Dataset's Members and Titles (columns so that a million rows are a few
// slices, not a million structs).
type Interactions struct {
	Member []int32
	Title  []int32
	TS     []int64 // unix seconds
	Event  []Event
	Weight []float32
	Market []int32 // index into Dataset.Markets, -1 none
}

// Len is the number of rows.
func (in *Interactions) Len() int { return len(in.Member) }

func (in *Interactions) add(m, t int32, ts int64, e Event, w float32, market int32) {
	in.Member = append(in.Member, m)
	in.Title = append(in.Title, t)
	in.TS = append(in.TS, ts)
	in.Event = append(in.Event, e)
	in.Weight = append(in.Weight, w)
	in.Market = append(in.Market, market)
}

// Dataset is a catalog, its members and their interactions, with dense
// indexes: member i is Members[i], title j is Titles[j].
type Dataset struct {
	Titles  []Title
	Members []Member
	Markets []string // every market named anywhere, sorted
	Inter   Interactions

	titleIdx  map[string]int32
	memberIdx map[string]int32
	marketIdx map[string]int32
}

// TitleIndex is the index of title id, or -1.
func (d *Dataset) TitleIndex(id string) int32 {
	if i, ok := d.titleIdx[id]; ok {
		return i
	}
	return -1
}

// MemberIndex is the index of member id, or -1.
func (d *Dataset) MemberIndex(id string) int32 {
	if i, ok := d.memberIdx[id]; ok {
		return i
	}
	return -1
}

func (d *Dataset) market(name string) int32 {
	if name == "" {
		return -1
	}
	if i, ok := d.marketIdx[name]; ok {
		return i
	}
	if d.marketIdx == nil {
		d.marketIdx = map[string]int32{}
	}
	i := int32(len(d.Markets))
	d.Markets = append(d.Markets, name)
	d.marketIdx[name] = i
	return i
}

func (d *Dataset) member(id string) int32 {
	if i, ok := d.memberIdx[id]; ok {
		return i
	}
	if d.memberIdx == nil {
		d.memberIdx = map[string]int32{}
	}
	i := int32(len(d.Members))
	d.Members = append(d.Members, Member{ID: id})
	d.memberIdx[id] = i
	return i
}

// NewDataset indexes a catalog and members (members may be nil; more are
// added by AddInteraction).
func NewDataset(titles []Title, members []Member) (*Dataset, error) {
	d := &Dataset{titleIdx: make(map[string]int32, len(titles)), memberIdx: make(map[string]int32, len(members))}
	for _, t := range titles {
		if _, dup := d.titleIdx[t.ID]; dup {
			return nil, fault.Invalidf("catalog", "title %q twice", t.ID)
		}
		d.titleIdx[t.ID] = int32(len(d.Titles))
		d.Titles = append(d.Titles, t)
		for _, m := range t.Markets {
			d.market(m)
		}
	}
	for _, m := range members {
		if _, dup := d.memberIdx[m.ID]; dup {
			return nil, fault.Invalidf("members", "member %q twice", m.ID)
		}
		d.memberIdx[m.ID] = int32(len(d.Members))
		d.Members = append(d.Members, m)
		d.market(m.Market)
	}
	return d, nil
}

// AddInteraction appends one interaction by ids; the title must be in the
// catalog, an unknown member is added.
func (d *Dataset) AddInteraction(member, title string, ts int64, e Event, w float64, market string) error {
	if !(w > 0) || w > MaxWeight {
		return fault.Invalidf("weight", "%g: must be a number above 0 and at most %g", w, float64(MaxWeight))
	}
	t := d.TitleIndex(title)
	if t < 0 {
		return fault.Invalidf("title", "title %q is not in the catalog", title)
	}
	d.Inter.add(d.member(member), t, ts, e, float32(w), d.market(market))
	return nil
}

// finish fills members' unknown markets from their latest interaction and
// sorts the market list (renumbering interactions' markets).
func (d *Dataset) finish() {
	latest := make([]int64, len(d.Members))
	inferred := make([]int32, len(d.Members))
	for i := range latest {
		latest[i], inferred[i] = math.MinInt64, -1
	}
	in := &d.Inter
	for r, m := range in.Member {
		if d.Members[m].Market == "" && in.Market[r] >= 0 && in.TS[r] >= latest[m] {
			latest[m], inferred[m] = in.TS[r], in.Market[r]
		}
	}
	for i, mk := range inferred {
		if mk >= 0 {
			d.Members[i].Market = d.Markets[mk]
		}
	}
	old := slices.Clone(d.Markets)
	slices.Sort(d.Markets)
	d.marketIdx = make(map[string]int32, len(d.Markets))
	for i, m := range d.Markets {
		d.marketIdx[m] = int32(i)
	}
	for r, mk := range in.Market {
		if mk >= 0 {
			in.Market[r] = d.marketIdx[old[mk]]
		}
	}
}

// Cut returns the rows before cut (train) and from cut on (test), sharing
// the catalog and the members: the held-out time split.
func (d *Dataset) Cut(cut int64) (train, test *Dataset) {
	train, test = d.shallow(), d.shallow()
	in := &d.Inter
	for r := range in.Member {
		dst := train
		if in.TS[r] >= cut {
			dst = test
		}
		dst.Inter.add(in.Member[r], in.Title[r], in.TS[r], in.Event[r], in.Weight[r], in.Market[r])
	}
	return train, test
}

// Before is the rows before cut (all of them when cut is 0).
func (d *Dataset) Before(cut int64) *Dataset {
	if cut == 0 {
		return d
	}
	train, _ := d.Cut(cut)
	return train
}

// CutAt is the time that leaves the last fraction of the interactions (by
// time) after it.
func (d *Dataset) CutAt(fraction float64) int64 {
	if d.Inter.Len() == 0 {
		return 0
	}
	ts := slices.Clone(d.Inter.TS)
	slices.Sort(ts)
	i := int(math.Round(float64(len(ts)) * (1 - fraction)))
	i = min(max(i, 0), len(ts)-1)
	return ts[i]
}

func (d *Dataset) shallow() *Dataset {
	return &Dataset{Titles: d.Titles, Members: d.Members, Markets: d.Markets,
		titleIdx: d.titleIdx, memberIdx: d.memberIdx, marketIdx: d.marketIdx}
}

// ParseTime reads RFC 3339 (or a date, 2006-01-02) or unix seconds.
func ParseTime(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty time: write RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or unix seconds")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Unix(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Unix(), nil
	}
	return 0, fmt.Errorf("%q is not a time: write RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or unix seconds", s)
}

// table is a CSV table's header, located.
type table struct {
	r    *csvtable.Reader
	name string
	col  map[string]int
}

func openTable(r io.Reader, name string, required []string, what string) (*table, error) {
	tr := csvtable.NewReader(r, name)
	header, line, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return nil, &csvtable.InputError{File: name, Err: fmt.Errorf("empty: a %s file starts with the header %s", what, strings.Join(required, ","))}
	}
	if err != nil {
		return nil, err
	}
	t := &table{r: tr, name: name, col: map[string]int{}}
	for i, h := range header {
		t.col[h] = i
	}
	for _, c := range required {
		if _, ok := t.col[c]; !ok {
			return nil, &csvtable.InputError{File: name, Line: line, Err: fmt.Errorf("no column %q: a %s file needs the columns %s", c, what, strings.Join(required, ","))}
		}
	}
	return t, nil
}

func (t *table) get(rec [][]byte, c string) string {
	i, ok := t.col[c]
	if !ok {
		return ""
	}
	return string(rec[i])
}

func (t *table) errAt(line int, col string, format string, args ...any) error {
	return &csvtable.InputError{File: t.name, Line: line, Column: col, Err: fmt.Errorf(format, args...)}
}

// ReadCatalog reads a catalog file: title,name,genres,creator,new_creator,
// released and optionally markets (genres and markets |-separated).
func ReadCatalog(r io.Reader, name string) ([]Title, error) {
	t, err := openTable(r, name, []string{"title", "name", "genres", "creator", "new_creator", "released"}, "catalog")
	if err != nil {
		return nil, err
	}
	var out []Title
	seen := map[string]int{}
	for {
		rec, line, err := t.r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		ti := Title{ID: t.get(rec, "title"), Name: t.get(rec, "name"), Creator: t.get(rec, "creator")}
		if ti.ID == "" {
			return nil, t.errAt(line, "title", "empty title id")
		}
		if prev, dup := seen[ti.ID]; dup {
			return nil, t.errAt(line, "title", "title %q again (first on line %d)", ti.ID, prev)
		}
		seen[ti.ID] = line
		ti.Genres = splitList(t.get(rec, "genres"))
		ti.Markets = splitList(t.get(rec, "markets"))
		switch v := strings.ToLower(t.get(rec, "new_creator")); v {
		case "true", "1", "yes":
			ti.NewCreator = true
		case "false", "0", "no", "":
		default:
			return nil, t.errAt(line, "new_creator", "%q: write true or false", v)
		}
		if s := t.get(rec, "released"); s != "" {
			if ti.Released, err = ParseTime(s); err != nil {
				return nil, t.errAt(line, "released", "%v", err)
			}
		}
		out = append(out, ti)
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for p := range strings.SplitSeq(s, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ReadMembers reads a members file: member,market,joined (joined may be
// empty).
func ReadMembers(r io.Reader, name string) ([]Member, error) {
	t, err := openTable(r, name, []string{"member", "market", "joined"}, "members")
	if err != nil {
		return nil, err
	}
	var out []Member
	seen := map[string]int{}
	for {
		rec, line, err := t.r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := Member{ID: t.get(rec, "member"), Market: t.get(rec, "market")}
		if m.ID == "" {
			return nil, t.errAt(line, "member", "empty member id")
		}
		if prev, dup := seen[m.ID]; dup {
			return nil, t.errAt(line, "member", "member %q again (first on line %d)", m.ID, prev)
		}
		seen[m.ID] = line
		if s := t.get(rec, "joined"); s != "" {
			if m.Joined, err = ParseTime(s); err != nil {
				return nil, t.errAt(line, "joined", "%v", err)
			}
		}
		out = append(out, m)
	}
}

// ReadInteractions appends an interactions file (member,title,ts and
// optionally event, weight, market) to d, whose catalog must hold every
// title.
func ReadInteractions(d *Dataset, r io.Reader, name string) error {
	t, err := openTable(r, name, []string{"member", "title", "ts"}, "interactions")
	if err != nil {
		return err
	}
	_, hasEvent := t.col["event"]
	_, hasWeight := t.col["weight"]
	for {
		rec, line, err := t.r.Next()
		if errors.Is(err, io.EOF) {
			d.finish()
			return nil
		}
		if err != nil {
			return err
		}
		member := t.get(rec, "member")
		if member == "" {
			return t.errAt(line, "member", "empty member id")
		}
		ti := d.TitleIndex(string(rec[t.col["title"]]))
		if ti < 0 {
			return t.errAt(line, "title", "title %q is not in the catalog", rec[t.col["title"]])
		}
		ts, err := ParseTime(string(rec[t.col["ts"]]))
		if err != nil {
			return t.errAt(line, "ts", "%v", err)
		}
		ev := Play
		if hasEvent {
			switch v := string(rec[t.col["event"]]); v {
			case "play", "":
			case "complete":
				ev = Complete
			default:
				return t.errAt(line, "event", "%q: write play or complete", v)
			}
		}
		w := 1.0
		if hasWeight {
			if b := rec[t.col["weight"]]; len(b) > 0 {
				f, ok := csvtable.ParseFloat(b)
				if !ok || !(f > 0) || f > MaxWeight {
					return t.errAt(line, "weight", "%q: must be a number above 0 and at most %g", b, float64(MaxWeight))
				}
				w = f
			}
		}
		d.Inter.add(d.member(member), ti, ts, ev, float32(w), d.market(t.get(rec, "market")))
	}
}

// MaxWeight bounds an interaction's weight: weights are summed and
// multiplied in float32, where a weight near float32's largest (3.4e38)
// overflows to Inf and silently empties the model.
const MaxWeight = 1e6

// ReadDataset reads a dataset: the catalog, the members (membersR may be nil)
// and the interactions.
func ReadDataset(catalog io.Reader, catalogName string, members io.Reader, membersName string, inter io.Reader, interName string) (*Dataset, error) {
	titles, err := ReadCatalog(catalog, catalogName)
	if err != nil {
		return nil, err
	}
	var ms []Member
	if members != nil {
		if ms, err = ReadMembers(members, membersName); err != nil {
			return nil, err
		}
	}
	d, err := NewDataset(titles, ms)
	if err != nil {
		return nil, err
	}
	if err := ReadInteractions(d, inter, interName); err != nil {
		return nil, err
	}
	return d, nil
}

// history is a member × title matrix in compressed rows: the distinct
// titles of each member with summed weights and whether one completed.
type history struct {
	Ptr       []int64 // len members+1
	Title     []int32
	Weight    []float32
	Completed []bool
}

func (h *history) row(u int) []int32 { return h.Title[h.Ptr[u]:h.Ptr[u+1]] }

// buildHistory sums each member's interactions per title (plays only
// count weight; a complete marks the pair completed and counts as a play
// when no play row came with it).
func buildHistory(in *Interactions, members int) history {
	counts := make([]int64, members+1)
	for _, m := range in.Member {
		counts[m+1]++
	}
	for i := 1; i <= members; i++ {
		counts[i] += counts[i-1]
	}
	order := make([]int32, in.Len())
	pos := slices.Clone(counts[:members])
	for r, m := range in.Member {
		order[pos[m]] = int32(r)
		pos[m]++
	}
	h := history{Ptr: make([]int64, members+1), Title: make([]int32, 0, in.Len()),
		Weight: make([]float32, 0, in.Len()), Completed: make([]bool, 0, in.Len())}
	for u := range members {
		rows := order[counts[u]:counts[u+1]]
		slices.SortFunc(rows, func(a, b int32) int { return int(in.Title[a]) - int(in.Title[b]) })
		for i := 0; i < len(rows); {
			t := in.Title[rows[i]]
			var w float32
			play, done := false, false
			for ; i < len(rows) && in.Title[rows[i]] == t; i++ {
				r := rows[i]
				if in.Event[r] == Complete {
					done = true
				} else {
					play = true
					w += in.Weight[r]
				}
			}
			if !play {
				w = 1
			}
			h.Title = append(h.Title, t)
			h.Weight = append(h.Weight, w)
			h.Completed = append(h.Completed, done)
		}
		h.Ptr[u+1] = int64(len(h.Title))
	}
	return h
}

// transpose is the title × member view of h (weights only).
func (h *history) transpose(titles int) (ptr []int64, idx []int32, w []float32) {
	ptr = make([]int64, titles+1)
	for _, t := range h.Title {
		ptr[t+1]++
	}
	for i := 1; i <= titles; i++ {
		ptr[i] += ptr[i-1]
	}
	idx = make([]int32, len(h.Title))
	w = make([]float32, len(h.Title))
	pos := slices.Clone(ptr[:titles])
	for u := 0; u+1 < len(h.Ptr); u++ {
		for k := h.Ptr[u]; k < h.Ptr[u+1]; k++ {
			t := h.Title[k]
			idx[pos[t]] = int32(u)
			w[pos[t]] = h.Weight[k]
			pos[t]++
		}
	}
	return ptr, idx, w
}
