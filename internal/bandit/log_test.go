package bandit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const goodArt = `{"id":"a1","at":"2026-01-01T00:00:00Z","context":{"market":"A"},"kind":"artwork","title":"t00","arms":["x","y"],"chosen":"y","propensity":0.5,"policy":"p"}`
const goodRows = `{"id":"r1","at":"2026-01-01T00:00:01Z","context":{},"kind":"row_order","arms":["a","b"],"chosen":["b","a"],"propensity":0.5,"first_propensity":0.5,"policy":"p"}`

func TestLogJoinsAndReportsEveryLine(t *testing.T) {
	decisions := strings.Join([]string{
		goodArt,
		goodRows,
		`{"id":"r2","at":"2026-01-01T00:00:02Z","context":{},"kind":"row_order","arms":["a","b"],"chosen":["b","a"],"propensity":0.5,"first_propensity":0.5,"policy":"p"}`,
		``,
		`not json`,
		`{"id":"x","at":"2026-01-01T00:00:00Z","kind":"artwork","title":"t","arms":["a"],"chosen":"b","propensity":1,"policy":"p"}`,
		`{"id":"y","at":"2026-01-01T00:00:00Z","kind":"artwork","title":"t","arms":["a"],"chosen":"a","propensity":0,"policy":"p"}`,
		`{"id":"z","at":"2026-01-01T00:00:00Z","kind":"row_order","arms":["a","b"],"chosen":["a","a"],"propensity":0.5,"first_propensity":0.5,"policy":"p"}`,
		`{"id":"k","at":"2026-01-01T00:00:00Z","kind":"artwork","reward":1}`,
		`{"id":"u","at":"2026-01-01T00:00:00Z","reward":1,"extra":2}`,
		`{"id":"d","id":"e","at":"2026-01-01T00:00:00Z","reward":1}`,
		goodArt, // a second decision a1
	}, "\n")
	rewards := strings.Join([]string{
		`{"id":"r1","reward":1,"at":"2026-01-01T00:01:00Z"}`,
		`{"id":"a1","reward":0,"at":"2026-01-01T00:01:00Z"}`,
		`{"id":"ghost","reward":1,"at":"2026-01-01T00:01:00Z"}`,
		`{"id":"a1","reward":1,"at":"2026-01-01T00:02:00Z"}`,
		`{"id":"n","reward":"1","at":"2026-01-01T00:02:00Z"}`,
	}, "\n") + "\n"
	lr := NewLogReader()
	ctx := context.Background()
	// Rewards first: a join does not depend on the order of the files.
	if err := lr.Read(ctx, "rewards.jsonl", strings.NewReader(rewards)); err != nil {
		t.Fatal(err)
	}
	if err := lr.Read(ctx, "decisions.jsonl", strings.NewReader(decisions)); err != nil {
		t.Fatal(err)
	}
	log := lr.Log()
	if len(log.Events) != 2 || log.Events[0].ID != "a1" || log.Events[1].ID != "r1" || log.Events[1].Reward != 1 || log.Events[0].Reward != 0 {
		t.Fatalf("events %+v, want a1 (reward 0) then r1 (reward 1)", log.Events)
	}
	if log.Events[0].Where != "decisions.jsonl:1" {
		t.Errorf("where %q, want decisions.jsonl:1", log.Events[0].Where)
	}
	if len(log.Unrewarded) != 1 || log.Unrewarded[0].String() != "decisions.jsonl:3" {
		t.Errorf("unrewarded %+v, want decisions.jsonl:3 (r2)", log.Unrewarded)
	}
	if len(log.UnknownRewards) != 1 || log.UnknownRewards[0].ID != "ghost" || log.UnknownRewards[0].String() != "rewards.jsonl:3" {
		t.Errorf("unknown rewards %+v, want ghost at rewards.jsonl:3", log.UnknownRewards)
	}
	if len(log.Duplicates) != 2 {
		t.Errorf("duplicates %+v, want the second a1 reward and decision", log.Duplicates)
	}
	want := []string{"decisions.jsonl:5", "decisions.jsonl:6", "decisions.jsonl:7", "decisions.jsonl:8",
		"decisions.jsonl:9", "decisions.jsonl:10", "decisions.jsonl:11", "rewards.jsonl:5"}
	var got []string
	for _, m := range log.Malformed {
		got = append(got, m.File+":"+itoa(m.Line))
		if !isInvalid(m) {
			t.Errorf("%v is not invalid input", m)
		}
	}
	slicesSort(got)
	slicesSort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("malformed at %v, want %v\n%v", got, want, log.Malformed)
	}
	if log.Lines != 17 {
		t.Errorf("lines %d, want 17", log.Lines)
	}
	// An event is two lines (decision and reward).
	if n := 2*len(log.Events) + log.Problems() + log.Blank; n != 17 {
		t.Errorf("events, problems and blank lines count %d lines, want 17: a line went missing", n)
	}
}

func TestLogRoundTripFromSimulation(t *testing.T) {
	w := NewWorld(2)
	events := simulateLog(t, w, uniform(t, w, 4), 3, 50)
	direct := simulateEvents(t, w, uniform(t, w, 4), 3, 50)
	if len(events) != len(direct) {
		t.Fatalf("%d events through the log, %d direct", len(events), len(direct))
	}
	for i := range events {
		a, b := events[i], direct[i]
		if a.ID != b.ID || a.Reward != b.Reward || a.Propensity != b.Propensity || a.FirstPropensity != b.FirstPropensity ||
			strings.Join(a.Chosen, ",") != strings.Join(b.Chosen, ",") || a.Context["market"] != b.Context["market"] || !a.At.Equal(b.At) {
			t.Fatalf("event %d changed through the log:\n%+v\n%+v", i, a, b)
		}
	}
}

func TestLogLongLineIsMalformed(t *testing.T) {
	long := `{"id":"` + strings.Repeat("x", MaxLine+10) + `"}` + "\n" + goodArt + "\n"
	lr := NewLogReader()
	if err := lr.Read(context.Background(), "f", strings.NewReader(long)); err != nil {
		t.Fatal(err)
	}
	log := lr.Log()
	if len(log.Malformed) != 1 || log.Malformed[0].Line != 1 || len(log.Unrewarded) != 1 || log.Unrewarded[0].Line != 2 {
		t.Fatalf("malformed %v, unrewarded %v: want line 1 too long and line 2 read", log.Malformed, log.Unrewarded)
	}
}

func TestReadLogFilesMissingFile(t *testing.T) {
	_, err := ReadLogFiles(context.Background(), filepath.Join(t.TempDir(), "nope.jsonl"))
	if !isInvalid(err) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want invalid input and not exist", err)
	}
}

func FuzzReadLog(f *testing.F) {
	f.Add([]byte(goodArt + "\n" + `{"id":"a1","reward":1,"at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(goodRows + "\n\n{}"))
	f.Add([]byte(`{"id":"r1","at":"2026-01-01T00:00:01Z","context":{"a":[1,{"b":null}]},"kind":"row_order","arms":["a"],"chosen":["a"],"propensity":1,"first_propensity":1,"policy":""}`))
	f.Add([]byte("\x00\n{\"id\":\n"))
	f.Add([]byte(`{"page":"p1","at":"2026-01-01T00:00:00Z","context":{"m":"A"}}` + "\n" +
		`{"id":"p1/rows","at":"2026-01-01T00:00:00Z","page":"p1","kind":"row_order","arms":["a"],"chosen":["a"],"propensity":1,"first_propensity":1,"policy":"p"}` + "\n" +
		`{"id":"p1/rows","reward":1,"at":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"id":"p2/rows","at":"2026-01-01T00:00:00Z","page":"p2","kind":"row_order","arms":["a"],"chosen":["a"],"propensity":1,"first_propensity":1,"policy":"p"}` + "\n" +
		`{"id":"p2/rows","reward":1,"at":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lr := NewLogReader()
		if err := lr.Read(context.Background(), "fuzz", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		log := lr.Log()
		// Every line is half an event, a page's context, a problem, or
		// blank: nothing vanishes.
		if got := 2*len(log.Events) + log.Pages + log.Problems() + log.Blank; got != log.Lines {
			t.Fatalf("%d events, %d pages, %d problems and %d blank lines from %d lines", len(log.Events), log.Pages, log.Problems(), log.Blank, log.Lines)
		}
		for _, e := range log.Events {
			if err := e.check(); err != nil {
				t.Fatalf("event %s accepted but invalid: %v", e.ID, err)
			}
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func slicesSort(s []string) { slices.Sort(s) }

// A finite but huge reward is malformed: it made training's models and
// the evaluation's estimates infinite (one such line poisoned a policy).
func TestLogHugeRewardIsMalformed(t *testing.T) {
	lines := goodArt + "\n" + `{"id":"a1","reward":1e308,"at":"2026-01-01T00:01:00Z"}` + "\n"
	lr := NewLogReader()
	if err := lr.Read(context.Background(), "f", strings.NewReader(lines)); err != nil {
		t.Fatal(err)
	}
	log := lr.Log()
	if len(log.Malformed) != 1 || log.Malformed[0].Line != 2 || !strings.Contains(log.Malformed[0].Error(), "must be within") {
		t.Fatalf("malformed %v: want line 2, a reward out of range", log.Malformed)
	}
	for _, v := range []float64{0, 1, -1, MaxReward, -MaxReward} {
		if err := CheckReward(v); err != nil {
			t.Errorf("reward %g refused: %v", v, err)
		}
	}
}

// A page logged by LogWriter.Page holds its context once, however many
// decisions it has (a page of one row order and twelve artworks wrote
// the context thirteen times, so a large context was multiplied), and
// every decision reads back with that context.
func TestLogPageWritesContextOnce(t *testing.T) {
	w := NewWorld(12)
	p := uniform(t, w, 3)
	titles := make([]TitleArtwork, len(w.Titles))
	for i, title := range w.Titles {
		titles[i] = TitleArtwork{Title: title, Artworks: w.ArtworkIDs(title)}
	}
	marker := strings.Repeat("m", 500)
	ctx := map[string]any{"market": "A", "note": marker}
	page, err := p.DecidePage(PageRequest{ID: "pg-1", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Context: ctx, Rows: w.Rows, Titles: titles})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	lw := NewLogWriter(&buf)
	if err := lw.Page(page); err != nil {
		t.Fatal(err)
	}
	if err := lw.Reward(Reward{ID: PageRowsID("pg-1"), Value: 1, At: page.At}); err != nil {
		t.Fatal(err)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), marker); n != 1 {
		t.Fatalf("the context is written %d times for a page of %d decisions, want once:\n%.600s", n, 1+len(page.Artwork), buf.String())
	}
	lr := NewLogReader()
	if err := lr.Read(context.Background(), "page.jsonl", &buf); err != nil {
		t.Fatal(err)
	}
	log := lr.Log()
	if log.Pages != 1 || len(log.Events) != 1 || len(log.Unrewarded) != len(titles) || len(log.Malformed) != 0 {
		t.Fatalf("pages %d, events %d, unrewarded %d, malformed %v: want 1 page, the rewarded row order and %d artworks unrewarded",
			log.Pages, len(log.Events), len(log.Unrewarded), log.Malformed, len(titles))
	}
	if got := 2*len(log.Events) + log.Pages + log.Problems() + log.Blank; got != log.Lines {
		t.Fatalf("%d lines accounted for, %d read", got, log.Lines)
	}
	e := log.Events[0]
	if e.Page != "pg-1" || e.Context["market"] != "A" || e.Context["note"] != marker || e.Kind != RowOrder {
		t.Fatalf("the row order read back as %+v: want page pg-1 with its context", e.Decision)
	}
	// Training and evaluation read the page's context like an inline one.
	if _, err := Evaluate(context.Background(), p, log.Events, EvalOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A decision naming a page whose context line was not read is malformed
// (never joined with an empty context), and its reward is a reward of no
// decision: every line is still accounted for.
func TestLogDecisionWithoutItsPage(t *testing.T) {
	lines := strings.Join([]string{
		`{"page":"p1","at":"2026-01-01T00:00:00Z","context":{"market":"A"}}`,
		`{"page":"p1","at":"2026-01-01T00:00:00Z","context":{"market":"B"}}`,
		`{"page":"p3","at":"2026-01-01T00:00:00Z","context":{},"kind":"artwork"}`,
		`{"page":"p4","at":"2026-01-01T00:00:00Z"}`,
		`{"id":"p1/art/t","at":"2026-01-01T00:00:00Z","page":"p1","kind":"artwork","title":"t","arms":["x","y"],"chosen":"x","propensity":0.5,"policy":"p"}`,
		`{"id":"p2/art/t","at":"2026-01-01T00:00:00Z","page":"p2","kind":"artwork","title":"t","arms":["x","y"],"chosen":"x","propensity":0.5,"policy":"p"}`,
		`{"id":"p5/art/t","at":"2026-01-01T00:00:00Z","page":"p1","context":{},"kind":"artwork","title":"t","arms":["x","y"],"chosen":"x","propensity":0.5,"policy":"p"}`,
		`{"id":"p1/art/t","reward":1,"at":"2026-01-01T00:01:00Z"}`,
		`{"id":"p2/art/t","reward":1,"at":"2026-01-01T00:01:00Z"}`,
	}, "\n")
	lr := NewLogReader()
	if err := lr.Read(context.Background(), "f", strings.NewReader(lines)); err != nil {
		t.Fatal(err)
	}
	log := lr.Log()
	if len(log.Events) != 1 || log.Events[0].Context["market"] != "A" {
		t.Fatalf("events %+v: want p1's artwork with the first context of p1", log.Events)
	}
	var where []string
	for _, m := range log.Malformed {
		where = append(where, itoa(m.Line))
	}
	slicesSort(where)
	if strings.Join(where, " ") != "3 4 6 7" || !strings.Contains(log.Malformed[len(log.Malformed)-1].Error(), `page "p2" has no context line`) {
		t.Fatalf("malformed %v: want lines 3 (a page with a kind), 4 (no context), 6 (page p2 never logged), 7 (page and context)", log.Malformed)
	}
	if len(log.Duplicates) != 1 || log.Duplicates[0].Line != 2 || len(log.UnknownRewards) != 1 || log.UnknownRewards[0].ID != "p2/art/t" {
		t.Fatalf("duplicates %v, unknown rewards %v: want p1's second context and p2's reward", log.Duplicates, log.UnknownRewards)
	}
	if got := 2*len(log.Events) + log.Pages + log.Problems() + log.Blank; got != log.Lines {
		t.Fatalf("%d lines accounted for, %d read", got, log.Lines)
	}
}

// A log's rotated files are read with it, oldest first: a decision in a
// rotated file joins its reward in the current one, and files that only
// look rotated are left alone.
func TestReadLogFilesReadsRotated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "home.jsonl")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(RotatedName(path, 2), goodArt)
	write(RotatedName(path, 1), goodRows)
	write(path, `{"id":"a1","reward":1,"at":"2026-01-01T00:01:00Z"}`+"\n"+`{"id":"r1","reward":0,"at":"2026-01-01T00:01:00Z"}`)
	write(path+".01", "not a log")
	write(path+".tmp", "not a log")
	files, err := RotatedFiles(path)
	if err != nil || len(files) != 2 || files[0] != RotatedName(path, 2) || files[1] != RotatedName(path, 1) {
		t.Fatalf("rotated files %v %v: want .2 then .1", files, err)
	}
	// Naming a rotated file as well does not read it twice.
	log, err := ReadLogFiles(context.Background(), path, RotatedName(path, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Events) != 2 || log.Problems() != 0 || log.Lines != 4 {
		t.Fatalf("events %d, problems %d, lines %d: want both decisions joined with their rewards, 4 lines", len(log.Events), log.Problems(), log.Lines)
	}
}
