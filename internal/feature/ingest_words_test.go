package feature

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIngestRefusesUnknownFields: an event with a field its source does
// not declare is rejected with a reason naming the field (it used to be
// accepted and the field dropped), and a CSV header with such a column is
// refused as a whole.
func TestIngestRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := NewEngine(testCatalog(time.Hour), t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(`{"user_id":"a","ts":1793527200,"x":1}
{"user_id":"a","ts":1793527200,"x":1,"xx":2,"extra":true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.Rejected != 1 || len(res.Errors) != 1 {
		t.Fatalf("result: %+v", res)
	}
	if want := `unknown fields "extra", "xx": source ev has user_id, ts, b, s, x`; !strings.Contains(res.Errors[0].Reason, want) {
		t.Fatalf("reason %q lacks %q", res.Errors[0].Reason, want)
	}
	_, err = eng.Ingest(ctx, "ev", strings.NewReader("user_id,ts,x,y\na,1793527200,1,2\n"))
	var ue *UnknownFieldError
	if !errors.As(err, &ue) || strings.Join(ue.Fields, ",") != "y" {
		t.Fatalf("CSV with an undeclared column: %v", err)
	}
}

// TestIngestReasonsInUserWords: no reason names a Go type, and an
// answer's rejections carry no zero time.
func TestIngestReasonsInUserWords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := NewEngine(testCatalog(time.Hour), t.TempDir(), NewMemory(), nil)
	defer eng.Close()
	// The first line says JSON lines (not CSV).
	in := `{"user_id": "a", "ts": 1793527200, "x": 1}
[1, 2]
"a string"
{"user_id": "a", "ts": 1793527200, "x": 1} {"user_id": "b"}
{"user_id": "a", "ts": 1793527200, "x": {"n": 1}}
{"user_id": "a", "ts": 1793527200, "s": 5}
{"user_id": "a", "ts": 1793527200
{"user_id": "a", "ts": "when?"}
`
	res, err := eng.Ingest(ctx, "ev", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`an event is a JSON object such as {"user_id": ..., "ts": ...}, not an array`,
		`an event is a JSON object such as {"user_id": ..., "ts": ...}, not a string`,
		`more after the event's object (byte 43): one event per line`,
		`field "x": want a number, got {"n": 1}`,
		`field "s": want a string, got 5`,
		`not valid JSON: the line ends before the value does`,
		`timestamp field "ts": "when?" is neither RFC 3339 nor unix seconds`,
	}
	if len(res.Errors) != len(want) {
		t.Fatalf("rejections: %+v", res.Errors)
	}
	for i, w := range want {
		if r := res.Errors[i].Reason; r != w || strings.Contains(r, "Go ") || strings.Contains(r, "json:") {
			t.Errorf("line %d: %q, want %q", res.Errors[i].Line, r, w)
		}
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), `"at"`) {
		t.Fatalf("an unknown time is written: %s", b)
	}
}

// TestAPIDurationsReadable: feature definitions and freshness answers
// write durations as "1s" and "7d", not nanoseconds, and read them back.
func TestAPIDurationsReadable(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(Stale{Feature: "f", Source: "s", SLA: time.Second, Age: 1500 * time.Millisecond})
	if want := `{"feature":"f","source":"s","sla":"1s","age":"1.5s","breached":false,"signal":false}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back Stale
	if err := json.Unmarshal(b, &back); err != nil || back.SLA != time.Second || back.Age != 1500*time.Millisecond {
		t.Fatalf("read back: %+v %v", back, err)
	}
	// No event yet: no age.
	b, _ = json.Marshal(Stale{SLA: time.Minute, Age: -1})
	if strings.Contains(string(b), `"age"`) || !strings.Contains(string(b), `"sla":"1m"`) {
		t.Fatalf("no event: %s", b)
	}
	b, _ = json.Marshal(Feature{Name: "f", Window: Duration(7 * 24 * time.Hour), FreshnessSLA: Duration(time.Second)})
	if !strings.Contains(string(b), `"window":"7d"`) || !strings.Contains(string(b), `"freshness_sla":"1s"`) {
		t.Fatalf("feature: %s", b)
	}
}
