package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSearchCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, stderr := runBaton(t, "search", "synth", "--out", dir, "--titles", "400", "--members", "60", "--sessions", "1500"); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, stderr)
	}
	cat, its, clk := filepath.Join(dir, "catalog.csv"), filepath.Join(dir, "interactions.csv"), filepath.Join(dir, "clicks.csv")
	model := filepath.Join(dir, "model.json")
	code, out, stderr := runBaton(t, "search", "train", "--catalog", cat, "--interactions", its, "--clicks", clk, "--out", model, "-o", "json")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	var tr struct {
		Weights map[string]float64 `json:"weights"`
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if tr.Metrics["mrr_rerank"] <= tr.Metrics["mrr_bm25"] || tr.Weights["affinity"] <= 0 {
		t.Fatalf("train answer %s", out)
	}
	idx := filepath.Join(dir, "idx")
	if code, _, stderr := runBaton(t, "search", "index", "--catalog", cat, "--out", idx); code != 0 {
		t.Fatalf("index: exit %d: %s", code, stderr)
	}
	var q struct {
		Path string `json:"path"`
		Hits []struct {
			Title string   `json:"title"`
			Score *float64 `json:"score"`
			Path  string   `json:"path"`
			Why   string   `json:"why"`
		} `json:"hits"`
	}
	word := strings.Split(strings.Split(readSearchFile(t, clk), "\n")[1], ",")[1]
	code, out, stderr = runBaton(t, "search", "query", "--index", idx, "--model", model, "--member", "m00001", "-n", "5", word, "-o", "json")
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(out), &q); err != nil || q.Path != "rerank" || len(q.Hits) != 5 || q.Hits[0].Score == nil {
		t.Fatalf("query answer %v %s", err, out)
	}
	code, out, _ = runBaton(t, "search", "query", "--catalog", cat, word, "-o", "json")
	if err := json.Unmarshal([]byte(out), &q); code != 0 || err != nil || q.Path != "bm25" || q.Hits[0].Score != nil {
		t.Fatalf("bm25 answer %d %v %s", code, err, out)
	}

	// Bad input exits 2, naming what is wrong; nothing half-written.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("member,query,title,clicked\nm1,q,t1,maybe\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"search", "train", "--catalog", cat, "--interactions", its, "--clicks", bad, "--out", filepath.Join(dir, "m2.json")}, `line 2, column "clicked"`},
		{[]string{"search", "query", "--catalog", cat, "--index", idx, "x"}, "one of --catalog and --index"},
		{[]string{"search", "query", "--catalog", cat, "--model", cat, "x"}, "catalog.csv"},
		{[]string{"search", "index", "--catalog", cat, "--out", idx}, "exists"},
		{[]string{"search", "query", "--catalog", filepath.Join(dir, "none.csv"), "x"}, "none.csv"},
	} {
		code, _, stderr := runBaton(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "m2.json")); !os.IsNotExist(err) {
		t.Errorf("a failed train left a model file: %v", err)
	}
}

func readSearchFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
