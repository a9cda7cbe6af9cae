package main_test

import (
	"encoding/json"
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
