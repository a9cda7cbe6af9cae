package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The demo path a user types: simulate uniform logs, train, evaluate on
// fresh logs, decide. The trained policy is estimated better than the
// logging policy on both kinds, and decides the planted best artwork.
func TestBanditCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	train, eval, policy := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "eval.jsonl"), filepath.Join(dir, "policy.json")
	for _, c := range [][]string{
		{"bandit", "simulate", "--seed", "1", "--decisions", "1500", "--titles", "3", "--out", train},
		{"bandit", "simulate", "--seed", "2", "--decisions", "1500", "--titles", "3", "--out", eval, "-o", "json"},
	} {
		if code, _, stderr := runBaton(t, c...); code != 0 {
			t.Fatalf("%v: exit %d: %s", c, code, stderr)
		}
	}
	again := filepath.Join(dir, "again.jsonl")
	if code, _, stderr := runBaton(t, "bandit", "simulate", "--seed", "1", "--decisions", "1500", "--titles", "3", "--out", again); code != 0 {
		t.Fatal(stderr)
	}
	if a, b := banditReadFile(t, train), banditReadFile(t, again); a != b {
		t.Error("the same seed simulated two different logs")
	}
	code, out, stderr := runBaton(t, "bandit", "train", "--log", train, "--out", policy, "--bucket", "hour=6,12,18", "-o", "json")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	var tr struct {
		Policy  string `json:"policy"`
		Trained struct {
			Records int `json:"records"`
		} `json:"trained"`
		Log struct {
			Lines, Events int
		} `json:"log"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || !strings.HasPrefix(tr.Policy, "lin-") || tr.Trained.Records != 1500*4 || tr.Log.Lines != 2*1500*4 {
		t.Fatalf("train answer %s (%v)", out, err)
	}
	code, out, stderr = runBaton(t, "bandit", "evaluate", "--policy", policy, "--log", eval, "-o", "json")
	if code != 0 {
		t.Fatalf("evaluate: exit %d: %s", code, stderr)
	}
	var rep struct {
		Policy string `json:"policy"`
		Kinds  []struct {
			Kind    string
			Logging struct{ Value, High float64 }
			IPS     struct{ Value, Low float64 }
			SNIPS   struct{ Value, Low float64 }
			DR      struct{ Value, Low float64 }
			ESS     float64
		} `json:"kinds"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Policy != tr.Policy || len(rep.Kinds) != 2 {
		t.Fatalf("evaluate answer %s (%v)", out, err)
	}
	for _, k := range rep.Kinds {
		if k.IPS.Low <= k.Logging.High || k.SNIPS.Low <= k.Logging.High || k.DR.Low <= k.Logging.High || k.ESS <= 0 {
			t.Errorf("%s: the trained policy is not estimated above the logging policy: %s", k.Kind, out)
		}
	}
	code, out, stderr = runBaton(t, "bandit", "decide", "--policy", policy, "--id", "p1",
		"--attr", "market=A", "--attr", "tenure=regular", "--attr", "device=tv", "--attr", "hour=9",
		"--rows", "trending,top_picks,continue", "--artwork", "t01=t01-a0,t01-a1,t01-a2", "-o", "json")
	if code != 0 {
		t.Fatalf("decide: exit %d: %s", code, stderr)
	}
	var page struct {
		Rows    map[string]any   `json:"rows"`
		Artwork []map[string]any `json:"artwork"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Artwork) != 1 || page.Rows["id"] != "p1/rows" {
		t.Fatalf("decide answer %s (%v)", out, err)
	}
	// ε = 0.1 by default: the greedy artwork (planted best in market A is
	// variant 2) is chosen with propensity 0.9 + 0.1/3.
	if a := page.Artwork[0]; a["chosen"] != "t01-a2" || a["propensity"].(float64) < 0.93 {
		t.Errorf("decide artwork %v, want t01-a2 with propensity 0.9333 (id p1 draws the greedy branch)", a)
	}
	// Same id, same decisions.
	if _, again, _ := runBaton(t, "bandit", "decide", "--policy", policy, "--id", "p1",
		"--attr", "market=A", "--attr", "tenure=regular", "--attr", "device=tv", "--attr", "hour=9",
		"--rows", "trending,top_picks,continue", "--artwork", "t01=t01-a0,t01-a1,t01-a2", "-o", "json"); banditStripAt(again) != banditStripAt(out) {
		t.Errorf("decide is not replayed by its id:\n%s\n%s", out, again)
	}
}

// banditStripAt drops the "at" lines, the only part of a decision that is the
// time it was made.
func banditStripAt(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, `"at":`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestBanditBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "log.jsonl")
	if code, _, stderr := runBaton(t, "bandit", "simulate", "--decisions", "20", "--titles", "1", "--out", log); code != 0 {
		t.Fatal(stderr)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, append(data, []byte("{\"id\":\"x\"}\nnot json\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.json")
	if code, _, stderr := runBaton(t, "bandit", "train", "--log", log, "--out", policy); code != 0 {
		t.Fatal(stderr)
	}
	notPolicy := filepath.Join(dir, "other.json")
	if err := os.WriteFile(notPolicy, []byte(`{"kind":"something","version":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--log", bad, "--out", filepath.Join(dir, "p2.json")}, "bad.jsonl:81"},
		{[]string{"train", "--log", bad, "--out", filepath.Join(dir, "p2.json")}, "bad.jsonl:82"},
		{[]string{"train", "--log", log, "--out", filepath.Join(dir, "p2.json"), "--epsilon", "0"}, "epsilon 0"},
		{[]string{"train", "--log", log, "--out", filepath.Join(dir, "p2.json"), "--bucket", "hour=a"}, `--bucket hour: "a"`},
		{[]string{"train", "--log", log, "--out", filepath.Join(dir, "p2.json"), "--bucket", "hour=1", "--bucket", "hour=2"}, `"hour" given twice`},
		{[]string{"train", "--log", filepath.Join(dir, "none.jsonl"), "--out", filepath.Join(dir, "p2.json")}, "none.jsonl"},
		{[]string{"evaluate", "--policy", notPolicy, "--log", log}, "not a bandit policy file"},
		{[]string{"evaluate", "--policy", policy, "--log", log, "--confidence", "2"}, "--confidence 2"},
		{[]string{"decide", "--policy", policy, "--rows", "a,b", "--attr", "market"}, `--attr "market"`},
		{[]string{"decide", "--policy", policy, "--rows", "a,b,a"}, `"a" given twice`},
		{[]string{"decide", "--policy", policy, "--rows", "a", "--attr", "hour=noon"}, `"hour"`},
		{[]string{"decide", "--policy", policy}, "nothing to decide"},
		{[]string{"simulate", "--out", filepath.Join(dir, "s.jsonl"), "--decisions", "0"}, "--decisions 0"},
	} {
		code, _, stderr := runBaton(t, append([]string{"bandit"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "p2.json")); !os.IsNotExist(err) {
		t.Errorf("a refused train left a policy file: %v", err)
	}
	// With --skip-malformed the bad lines are counted, not fatal.
	code, out, stderr := runBaton(t, "bandit", "train", "--log", bad, "--out", filepath.Join(dir, "p3.json"), "--skip-malformed", "-o", "json")
	if code != 0 || !strings.Contains(out, `"malformed": 2`) {
		t.Errorf("--skip-malformed: exit %d, %s %s", code, out, stderr)
	}
}

func banditReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
