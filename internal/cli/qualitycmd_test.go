package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQualityCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, stderr := runBaton(t, "quality", "synth", "--out", dir, "--titles", "400", "--rated", "0.5"); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, stderr)
	}
	sig, rat, model := filepath.Join(dir, "signals.csv"), filepath.Join(dir, "ratings.csv"), filepath.Join(dir, "model.json")
	code, out, stderr := runBaton(t, "quality", "train", "--signals", sig, "--ratings", rat, "--out", model, "-o", "json")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	var tr struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || !(tr.Metrics["rmse"] < tr.Metrics["rmse_baseline"]) {
		t.Fatalf("train answer %v %s", err, out)
	}
	var shards []string
	for _, s := range []string{"0/2", "1/2"} {
		p := filepath.Join(dir, "s"+s[:1]+".csv")
		if code, _, stderr := runBaton(t, "quality", "score", "--model", model, "--signals", sig, "--shard", s, "--out", p); code != 0 {
			t.Fatalf("score %s: exit %d: %s", s, code, stderr)
		}
		shards = append(shards, p)
	}
	code, out, stderr = runBaton(t, append([]string{"quality", "merge", "-o", "json", "--out", filepath.Join(dir, "all.csv")}, shards...)...)
	var rep struct {
		Titles  int               `json:"titles"`
		Flagged []json.RawMessage `json:"flagged"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Titles != 400 || len(rep.Flagged) == 0 {
		t.Fatalf("merge: exit %d %v %s %s", code, err, out, stderr)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("title,vmaf\nt1,80\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"quality", "score", "--model", model, "--signals", sig, "--shard", "2/2", "--out", filepath.Join(dir, "x.csv")}, "--shard"},
		{[]string{"quality", "score", "--model", model, "--signals", bad, "--out", filepath.Join(dir, "x.csv")}, `no column "bitrate_kbps"`},
		{[]string{"quality", "score", "--model", sig, "--signals", sig, "--out", filepath.Join(dir, "x.csv")}, "signals.csv"},
		{[]string{"quality", "merge", "--out", filepath.Join(dir, "x.csv"), shards[0], filepath.Join(dir, "s0.csv")}, "named twice"},
		{[]string{"quality", "train", "--signals", sig, "--ratings", sig, "--out", filepath.Join(dir, "x.json")}, "title,rating"},
	} {
		code, _, stderr := runBaton(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); !os.IsNotExist(err) {
		t.Errorf("a failed command left its output: %v", err)
	}
}
