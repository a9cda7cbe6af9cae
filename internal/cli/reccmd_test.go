package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pq "github.com/parquet-go/parquet-go"
)

// TestRecCommands: synth, train, eval (JSON and NAME=VALUE lines),
// recommend and topn (CSV and Parquet) in process; bad flags exit 2.
func TestRecCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, e := runBaton(t, "rec", "synth", "--seed", "3", "--members", "300", "--titles", "80", "--out", data); code != 0 {
		t.Fatalf("synth: %s", e)
	}
	files := []string{"--interactions", filepath.Join(data, "interactions.csv"), "--catalog", filepath.Join(data, "catalog.csv"),
		"--members", filepath.Join(data, "members.csv")}
	model := filepath.Join(dir, "knn.rec")
	summary := filepath.Join(dir, "train.json")
	code, _, e := runBaton(t, append([]string{"rec", "train", "--model", "knn", "--until", "2026-02-18", "--param", "neighbours=20",
		"--out", model, "--metrics-out", summary}, files...)...)
	if code != 0 {
		t.Fatalf("train: %s", e)
	}
	var s struct {
		Kind   string
		Params map[string]string
		Until  string
	}
	b, _ := os.ReadFile(summary)
	if err := json.Unmarshal(b, &s); err != nil || s.Kind != "knn" || s.Params["neighbours"] != "20" || s.Until != "2026-02-18T00:00:00Z" {
		t.Fatalf("summary: %v %s", err, b)
	}
	code, out, e := runBaton(t, append([]string{"rec", "eval", "--model", model, "--split", "2026-02-18", "-k", "5", "-o", "json"}, files...)...)
	var ev struct {
		K      int
		Kind   string
		Recall float64
		Flat   map[string]float64
	}
	if code != 0 || json.Unmarshal([]byte(out), &ev) != nil || ev.K != 5 || ev.Kind != "knn" || ev.Flat["recall@5"] != ev.Recall || !(ev.Recall > 0) {
		t.Fatalf("eval: %d %s %s", code, out, e)
	}
	code, out, _ = runBaton(t, append([]string{"rec", "eval", "--model", model, "--split", "2026-02-18"}, files...)...)
	if code != 0 || !strings.Contains(out, "\nrecall@10=") || !strings.Contains(out, "\nndcg@10=") {
		t.Fatalf("eval lines: %s", out)
	}
	code, out, _ = runBaton(t, "rec", "recommend", "--model", model, "--member", "m000002", "-n", "3")
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("recommend: %s", out)
	}
	csvOut, pqOut := filepath.Join(dir, "top.csv"), filepath.Join(dir, "top.parquet")
	if code, _, e := runBaton(t, "rec", "topn", "--model", model, "--out", csvOut, "-n", "4"); code != 0 {
		t.Fatalf("topn csv: %s", e)
	}
	if code, _, e := runBaton(t, "rec", "topn", "--model", model, "--out", pqOut, "-n", "4"); code != 0 {
		t.Fatalf("topn parquet: %s", e)
	}
	b, _ = os.ReadFile(csvOut)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	rows, err := pq.ReadFile[topNRow](pqOut)
	if err != nil || len(rows) != len(lines)-1 || len(rows) != 4*300 {
		t.Fatalf("parquet: %v %d rows, CSV %d lines", err, len(rows), len(lines))
	}
	if first := strings.Split(lines[1], ","); rows[0].Member != first[0] || rows[0].Title != first[2] || rows[0].Rank != 1 {
		t.Fatalf("parquet %+v, CSV %s", rows[0], lines[1])
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"rec", "train", "--model", "svd", "--out", filepath.Join(dir, "x")}, `unknown model kind "svd"`},
		{[]string{"rec", "train", "--model", "als", "--out", filepath.Join(dir, "x"), "--until", "later"}, `--until: "later" is not a time`},
		{[]string{"rec", "train", "--model", "als", "--out", filepath.Join(dir, "x"), "--param", "nope"}, "--param"},
		{[]string{"rec", "topn", "--model", model, "--out", filepath.Join(dir, "top.txt")}, "must end in .csv or .parquet"},
		{[]string{"rec", "eval", "--model", model, "--split", "2030-01-01"}, "no interaction at or after it"},
		{[]string{"rec", "recommend", "--model", filepath.Join(dir, "missing.rec"), "--member", "m"}, "no such file"},
	} {
		args := c.args
		if c.args[1] == "train" || c.args[1] == "eval" {
			args = append(append([]string{}, c.args...), files...)
		}
		var o, e bytes.Buffer
		if code := Main(args, strings.NewReader(""), &o, &e); code != 2 || !strings.Contains(e.String(), c.msg) {
			t.Fatalf("%v: exit %d, %s", c.args, code, e.String())
		}
	}
}
