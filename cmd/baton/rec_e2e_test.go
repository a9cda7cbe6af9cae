package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecFlow: examples/rec/train.yaml synthesizes a service, trains the
// six recommenders, evaluates them on the held-out days and registers
// each with its metrics and training set; ALS beats popularity on
// recall@10. Then the rec commands on the run's files: a member's
// top-N, batch top-N, and bad input exiting 2.
func TestRecFlow(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	must(t, baton(t, home, "run", "../../examples/rec/train.yaml", "--param", "members=1500", "--param", "titles=300"), 0)
	recall := map[string]float64{}
	for _, kind := range []string{"popularity", "knn", "als", "ppr", "blend", "multitask"} {
		r := must(t, baton(t, home, "model", "show", "rec-"+kind, "1", "-o", "json"), 0)
		var shown struct {
			Version struct {
				State    string
				Artifact string
				Metrics  map[string]float64
				Lineage  struct {
					TrainingSet string `json:"training_set"`
				}
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
			t.Fatalf("%s: %v %s", kind, err, r.stdout)
		}
		v := shown.Version
		if v.State != "registered" || v.Lineage.TrainingSet != "1/synth/interactions.csv" || !strings.HasPrefix(v.Artifact, "1/train/") {
			t.Fatalf("%s: %s", kind, r.stdout)
		}
		for _, m := range []string{"recall@10", "ndcg@10", "map@10", "coverage@10", "diversity@10", "novelty@10", "new_creator_share@10", "recall@10/US"} {
			if _, ok := v.Metrics[m]; !ok {
				t.Fatalf("%s: no metric %s: %v", kind, m, v.Metrics)
			}
		}
		recall[kind] = v.Metrics["recall@10"]
	}
	t.Logf("recall@10: %v", recall)
	if recall["als"] <= recall["popularity"] {
		t.Fatalf("ALS recall@10 %g not above popularity's %g", recall["als"], recall["popularity"])
	}

	dir := t.TempDir()
	model := filepath.Join(dir, "als.rec")
	must(t, baton(t, home, "artifact", "get", "1/train/2/model.rec", "--out", model), 0)
	r := must(t, baton(t, home, "rec", "recommend", "--model", model, "--member", "m000001", "-n", "5", "-o", "json"), 0)
	var rr struct {
		Kind       string
		Known      bool
		Confidence float64
		Items      []struct{ Title string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rr); err != nil || rr.Kind != "als" || !rr.Known || !(rr.Confidence > 0) || len(rr.Items) != 5 {
		t.Fatalf("recommend: %v %s", err, r.stdout)
	}
	r = must(t, baton(t, home, "rec", "recommend", "--model", model, "--member", "nobody", "-o", "json"), 0)
	if !strings.Contains(r.stdout, `"confidence": 0`) || !strings.Contains(r.stdout, `"known": false`) {
		t.Fatalf("unknown member: %s", r.stdout)
	}
	out := filepath.Join(dir, "top.csv")
	must(t, baton(t, home, "rec", "topn", "--model", model, "--out", out, "-n", "3"), 0)
	b, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(b), "member,rank,title,score\n") || strings.Count(string(b), "\n") < 3*1000 {
		t.Fatalf("topn: %v %.200s", err, b)
	}
	// Bad input: exit 2, naming what is wrong.
	r = must(t, baton(t, home, "rec", "recommend", "--model", out, "--member", "m1"), 2)
	if !strings.Contains(r.stderr, "not a baton recommendation model file") {
		t.Fatalf("not a model: %s", r.stderr)
	}
	bad := writeFile(t, dir, "inter.csv", "member,title,ts\nm1,t00001,yesterday\n")
	cat := writeFile(t, dir, "cat.csv", "title,name,genres,creator,new_creator,released\nt00001,A,x,c,false,2025-01-01\n")
	r = must(t, baton(t, home, "rec", "train", "--model", "als", "--interactions", bad, "--catalog", cat, "--out", filepath.Join(dir, "x.rec")), 2)
	if !strings.Contains(r.stderr, bad+`: line 2, column "ts": "yesterday" is not a time`) {
		t.Fatalf("bad ts: %s", r.stderr)
	}
	good := writeFile(t, dir, "good.csv", "member,title,ts\nm1,t00001,5\n")
	r = must(t, baton(t, home, "rec", "train", "--model", "als", "--param", "factors=0", "--interactions", good, "--catalog", cat, "--out", filepath.Join(dir, "x.rec")), 2)
	if !strings.Contains(r.stderr, `param factors: "0": must be an integer from 1 to 1024`) {
		t.Fatalf("bad param: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.rec")); !os.IsNotExist(err) {
		t.Fatalf("a failed train wrote its output: %v", err)
	}
}

// TestRecImportServes brings a factor model trained elsewhere: a flow
// step imports planted member and title factors (baton rec import) with
// the data they were trained on, and registers the file; a recommend
// endpoint serves it as any trained model. A member's top picks follow
// the dot products of the factors (not popularity, the fallback's order),
// "Because You Watched" follows the cosine of the title factors. A bad
// cell exits 2 naming the file, the line and the column.
func TestRecImportServes(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	// t<i> has the factors (13−i, i); m1 (1, 0) played t1..t3, m2 (0, 1)
	// played t10..t12, and both played t6, the most played title.
	var cat, tf strings.Builder
	cat.WriteString("title,name,genres,creator,new_creator,released\n")
	tf.WriteString("title,f0,f1\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&cat, "t%02d,Title %d,g%d,c%d,false,2026-01-01\n", i, i, i, i)
		fmt.Fprintf(&tf, "t%02d,%d,%d\n", i, 13-i, i)
	}
	writeFile(t, dir, "catalog.csv", cat.String())
	writeFile(t, dir, "title-factors.csv", tf.String())
	writeFile(t, dir, "member-factors.csv", "member,f0,f1\nm1,1,0\nm2,0,1\n")
	writeFile(t, dir, "interactions.csv", "member,title,ts,weight\n"+
		"m1,t01,1,1\nm1,t02,2,1\nm1,t03,3,1\nm1,t06,4,5\n"+
		"m2,t10,1,1\nm2,t11,2,1\nm2,t12,3,1\nm2,t06,4,1\n")
	flow := writeFile(t, dir, "import.yaml", `name: import-factors
steps:
  - name: import
    run: |
      cp `+dir+`/interactions.csv "$BATON_OUTPUT_DIR/interactions.csv"
      "$BATON_BIN" rec import --member-factors `+dir+`/member-factors.csv --title-factors `+dir+`/title-factors.csv \
        --interactions `+dir+`/interactions.csv --catalog `+dir+`/catalog.csv --out "$BATON_OUTPUT_DIR/model.rec"
      "$BATON_BIN" rec train --model popularity --interactions `+dir+`/interactions.csv --catalog `+dir+`/catalog.csv \
        --out "$BATON_OUTPUT_DIR/popularity.rec"
  - name: register
    needs: [import]
    run: |
      "$BATON_BIN" model register rec-mine --artifact "$BATON_RUN_ID/import/model.rec" \
        --training-set "$BATON_RUN_ID/import/interactions.csv" --reason "factors trained elsewhere"
      "$BATON_BIN" model register rec-pop --artifact "$BATON_RUN_ID/import/popularity.rec" --reason "the fallback"
`)
	must(t, baton(t, home, "run", flow), 0)
	if r := must(t, baton(t, home, "model", "show", "rec-mine", "1", "-o", "json"), 0); !strings.Contains(r.stdout, `"training_set": "1/import/interactions.csv"`) {
		t.Fatalf("rec-mine 1 without its training set: %s", r.stdout)
	}
	for _, m := range []string{"rec-mine", "rec-pop"} {
		must(t, baton(t, home, "model", "transition", m, "1", "canary", "--reason", "imported"), 0)
		must(t, baton(t, home, "model", "transition", m, "1", "production", "--reason", "imported"), 0)
	}
	eps := writeFile(t, dir, "endpoints.yaml", `endpoints:
  - name: home
    kind: recommend
    model: rec-mine
    min_confidence: 0.3
    fallback: {model: rec-pop}
    recommend:
      rows:
        - {type: top_picks, items: 4}
        - {type: because_you_watched, items: 3}
`)
	must(t, baton(t, home, "endpoint", "apply", eps), 0)
	startServer(t, home)
	type row struct {
		ID    string
		Title string
		Items []struct{ Title string }
	}
	page := func(member string) (string, []row) {
		r := must(t, baton(t, home, "predict", "home", "--key", member), 0)
		var resp struct {
			Path       string
			Model      string
			Prediction struct{ Rows []row }
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		return resp.Path + " " + resp.Model, resp.Prediction.Rows
	}
	titles := func(r row) string {
		var out []string
		for _, it := range r.Items {
			out = append(out, it.Title)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		member, picks, like string
	}{
		// Top picks: f0 (m1) or f1 (m2) descending, seen titles left out;
		// popularity would put t10..t12 first for m1. Because You
		// Watched the most played t06 (7, 6): the titles left (not seen,
		// not on the page already) by cosine with it.
		{"m1", "t04 t05 t07 t08", "Because You Watched Title 6: t09 t10 t11"},
		{"m2", "t09 t08 t07 t05", "Because You Watched Title 6: t04 t03 t02"},
	} {
		served, rows := page(c.member)
		if served != "model rec-mine" || len(rows) != 2 {
			t.Fatalf("%s: served by %s, %d rows: %+v", c.member, served, len(rows), rows)
		}
		if got := titles(rows[0]); rows[0].ID != "top_picks" || got != c.picks {
			t.Errorf("%s's top picks: %s, want %s (the factors' order)", c.member, got, c.picks)
		}
		if got := rows[1].Title + ": " + titles(rows[1]); got != c.like {
			t.Errorf("%s: %s, want %s (title factors' cosine to t06)", c.member, got, c.like)
		}
	}
	if served, _ := page("m9"); served != "fallback rec-pop" {
		t.Errorf("an unknown member: served by %s, want the popularity fallback", served)
	}

	bad := writeFile(t, dir, "bad.csv", "title,f0,f1\nt01,1,2\nt02,NaN,1\n")
	r := must(t, baton(t, home, "rec", "import", "--member-factors", filepath.Join(dir, "member-factors.csv"), "--title-factors", bad,
		"--interactions", filepath.Join(dir, "interactions.csv"), "--catalog", filepath.Join(dir, "catalog.csv"), "--out", filepath.Join(dir, "x.rec")), 2)
	if !strings.Contains(r.stderr, bad+`: line 3, column "f0": "NaN": a factor must be a finite number`) {
		t.Fatalf("bad factor: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.rec")); !os.IsNotExist(err) {
		t.Fatalf("a failed import wrote its output: %v", err)
	}
}
