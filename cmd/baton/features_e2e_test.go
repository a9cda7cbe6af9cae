package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFeaturesEndToEnd drives the features contract of ml.md through the
// built binary: apply, ingest with bad events, online get, a training set
// in CSV and Parquet, a gate that blocks, a flow whose training_set step
// publishes features_ready, and bad definitions.
func TestFeaturesEndToEnd(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	ex := "../../examples/features/"
	must(t, baton(t, home, "flow", "apply", "../../examples/signals/signals.yaml"), 0)
	r := must(t, baton(t, home, "feature", "apply", ex+"features.yaml"), 0)
	if !strings.Contains(r.stdout, "feature plays_1h v1 registered") {
		t.Fatalf("apply: %s", r.stdout)
	}
	// Three malformed events: counted, kept, and the rest accepted (exit 1
	// says some were rejected).
	r = must(t, baton(t, home, "feature", "ingest", "plays", ex+"plays.jsonl", "-o", "json"), 1)
	var ing struct{ Accepted, Rejected int }
	if err := json.Unmarshal([]byte(r.stdout), &ing); err != nil || ing.Accepted != 6 || ing.Rejected != 3 {
		t.Fatalf("ingest: %v %s", err, r.stdout)
	}
	dl, err := os.ReadFile(filepath.Join(home, "features", "deadletter", "plays.deadletter.jsonl"))
	if err != nil || strings.Count(string(dl), "\n") != 3 || !strings.Contains(string(dl), `missing key field`) {
		t.Fatalf("dead letters: %v %s", err, dl)
	}
	r = must(t, baton(t, home, "feature", "get", "m1", "--at", "2026-11-28T10:00:00Z", "-o", "json"), 0)
	var v struct {
		Key      string
		Features map[string]any
		AsOf     string `json:"as_of"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Key != "m1" || v.Features["plays_1h"] != 2.0 ||
		v.Features["minutes_24h"] != 42.5 || v.Features["last_market"] != "CA" || v.AsOf != "2026-11-28T10:00:00Z" {
		t.Fatalf("get: %v %s", err, r.stdout)
	}
	out := filepath.Join(t.TempDir(), "train.csv")
	must(t, baton(t, home, "feature", "training-set", "--labels", ex+"labels.csv", "--out", out,
		"--feature", "plays_1h", "--feature", "minutes_24h"), 0)
	got, _ := os.ReadFile(out)
	want := "member_id,ts,churned,plays_1h,minutes_24h\n" +
		"m1,2026-11-28T10:00:00Z,0,2,42.5\n" +
		"m1,2026-11-28T09:59:59Z,0,1,12.5\n" +
		"m2,2026-11-28T10:30:00Z,1,1,115\n" +
		"m3,2026-11-28T10:00:00Z,0,1,5\n" +
		"m5,2026-11-28T10:00:00Z,1,0,\n"
	if string(got) != want {
		t.Fatalf("training set:\n%s\nwant:\n%s", got, want)
	}
	pq := filepath.Join(t.TempDir(), "train.parquet")
	must(t, baton(t, home, "feature", "training-set", "--labels", ex+"labels.csv", "--out", pq), 0)
	if b, _ := os.ReadFile(pq); len(b) < 8 || string(b[:4]) != "PAR1" {
		t.Fatalf("not a parquet file")
	}
	// The online and batch paths agree on these events.
	r = must(t, baton(t, home, "feature", "consistency", "--at", "2026-11-28T10:30:00Z", "-o", "json"), 0)
	if !strings.Contains(r.stdout, `"mismatched": 0`) || !strings.Contains(r.stdout, `"compared": 15`) {
		t.Fatalf("consistency: %s", r.stdout)
	}
	// A stricter not-null gate blocks: exit 1, a report, no output.
	strict := writeFile(t, t.TempDir(), "strict.yaml", strings.Replace(mustRead(t, ex+"features.yaml"), "min: 0.5, action: block", "min: 0.95, action: block", 1))
	must(t, baton(t, home, "feature", "apply", strict), 0)
	blocked := filepath.Join(t.TempDir(), "blocked.csv")
	r = must(t, baton(t, home, "feature", "training-set", "--labels", ex+"labels.csv", "--out", blocked), 1)
	if !strings.Contains(r.stderr, "blocked by a quality gate") || !strings.Contains(r.stderr, "FAIL minutes_24h not_null_rate (block)") {
		t.Fatalf("blocked: %s", r.stderr)
	}
	if _, err := os.Stat(blocked); !os.IsNotExist(err) {
		t.Fatalf("a blocked training set was written")
	}
	// The flow step fails the same way and publishes nothing.
	must(t, baton(t, home, "run", ex+"train.yaml"), 1)
	if r := must(t, baton(t, home, "signal", "list", "-o", "json"), 0); strings.Contains(r.stdout, "features_ready") {
		t.Fatalf("a blocked step published: %s", r.stdout)
	}
	must(t, baton(t, home, "feature", "apply", ex+"features.yaml"), 0)
	must(t, baton(t, home, "run", ex+"train.yaml"), 0)
	r = must(t, baton(t, home, "signal", "list", "-o", "json"), 0)
	if !strings.Contains(r.stdout, `"features_ready"`) || !strings.Contains(r.stdout, `\"row_count\":5`) && !strings.Contains(r.stdout, `"row_count": 5`) {
		t.Fatalf("features_ready: %s", r.stdout)
	}
	if r := must(t, baton(t, home, "artifact", "get", "2/train/rows.txt"), 0); r.stdout != "5\n" {
		t.Fatalf("rows: %q", r.stdout)
	}
	// Bad definitions exit 2 and name file, line and field; nothing stored.
	bad := writeFile(t, t.TempDir(), "bad.yaml", "features:\n  - name: x\n    source: nope\n    aggregate: count\n    window: 1h\n")
	r = must(t, baton(t, home, "feature", "apply", bad), 2)
	if !strings.Contains(r.stderr, "bad.yaml:3:13: features[0].source: unknown source \"nope\"") {
		t.Fatalf("bad defs: %s", r.stderr)
	}
	must(t, baton(t, home, "feature", "get", "m1", "--feature", "nope"), 2)
	must(t, baton(t, home, "feature", "ingest", "views", ex+"plays.jsonl"), 2)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
