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
	f.Fuzz(func(t *testing.T, data []byte) {
		lr := NewLogReader()
		if err := lr.Read(context.Background(), "fuzz", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		log := lr.Log()
		// Every line is half an event, a problem, or blank: nothing vanishes.
		if got := 2*len(log.Events) + log.Problems() + log.Blank; got != log.Lines {
			t.Fatalf("%d events, %d problems and %d blank lines from %d lines", len(log.Events), log.Problems(), log.Blank, log.Lines)
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
