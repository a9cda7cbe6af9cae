package rec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// importWorld is eight titles whose planted factors are (9−i, i) for t<i>,
// and three members: m1 (1, 0) played t1 and t2, m2 (0, 1) played t7 and
// t8, m3 played nothing. The factor files are not in the catalog's or the
// members' order: rows go by id.
func importWorld(t *testing.T) (*Dataset, string, string) {
	t.Helper()
	var cat, mf, tf strings.Builder
	cat.WriteString("title,name,genres,creator,new_creator,released\n")
	tf.WriteString("title,f0,f1\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&cat, "t%d,Title %d,drama,c%d,false,2026-01-01\n", i, i, i)
		fmt.Fprintf(&tf, "t%d,%d,%d\n", 9-i, i, 9-i) // t8 first
	}
	mf.WriteString("member,f0,f1\nm2,0,1\nm1,1,0\n")
	inter := "member,title,ts\nm1,t1,1\nm1,t2,2\nm2,t7,3\nm2,t8,4\n"
	d, err := ReadDataset(strings.NewReader(cat.String()), "catalog.csv", strings.NewReader("member,market,joined\nm3,US,\n"), "members.csv",
		strings.NewReader(inter), "inter.csv")
	if err != nil {
		t.Fatal(err)
	}
	return d, mf.String(), tf.String()
}

func importFactors(t *testing.T, d *Dataset, members, titles string) (*Recommender, error) {
	t.Helper()
	mf, err := ReadFactors(strings.NewReader(members), "members-f.csv", "member")
	if err != nil {
		return nil, err
	}
	tf, err := ReadFactors(strings.NewReader(titles), "titles-f.csv", "title")
	if err != nil {
		return nil, err
	}
	return ImportALS(d, mf, tf)
}

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Title
	}
	return out
}

// Factors trained elsewhere become an als model that ranks by their dot
// products (seen titles excluded), finds like titles by their cosine,
// answers a member without history from popularity, and survives the
// model file as a trained one does.
func TestImportALSRanksByTheFactors(t *testing.T) {
	d, mf, tf := importWorld(t)
	m, err := importFactors(t, d, mf, tf)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Recommender{m, back} {
		if r.Kind() != KindALS || r.Params()["factors"] != "2" {
			t.Fatalf("kind %s, params %v", r.Kind(), r.Params())
		}
		if got := ids(r.Recommend("m1", Options{N: 3})); !slices.Equal(got, []string{"t3", "t4", "t5"}) {
			t.Errorf("m1 (1, 0): %v, want t3 t4 t5 (f0 descending, t1 and t2 seen)", got)
		}
		if got := ids(r.Recommend("m2", Options{N: 3})); !slices.Equal(got, []string{"t6", "t5", "t4"}) {
			t.Errorf("m2 (0, 1): %v, want t6 t5 t4", got)
		}
		if s := r.Score("m1", []string{"t3", "t8"}); s[0] != 6 || s[1] != 1 {
			t.Errorf("m1's scores of t3, t8: %v, want the dot products 6, 1", s)
		}
		// m3 has no history (and no factors): popularity, confidence 0.
		if got := ids(r.Recommend("m3", Options{N: 4})); !slices.Equal(got, []string{"t1", "t2", "t7", "t8"}) || r.Confidence("m3") != 0 {
			t.Errorf("m3: %v (confidence %g), want the played titles by popularity", got, r.Confidence("m3"))
		}
		// t1 (8, 1) is most like t2 (7, 2) by cosine, least like t8 (1, 8).
		if sim := ids(r.Similar("t1", 7, "")); sim[0] != "t2" || sim[6] != "t8" {
			t.Errorf("like t1: %v", sim)
		}
	}
	if c := m.Confidence("m1"); math.Abs(c-2.0/7) > 1e-12 {
		t.Errorf("m1's confidence %g, want 2/7", c)
	}
	if _, err := Evaluate(context.Background(), back, d, 3); err != nil {
		t.Fatal(err)
	}
}

// Every bad factors file is invalid input naming the file and, for a
// cell, its line and column; nothing is imported.
func TestImportALSRefusesBadFactors(t *testing.T) {
	d, mf, tf := importWorld(t)
	for _, c := range []struct {
		name, members, titles, want string
	}{
		{"different K", mf, "title,f0,f1,f2\nt1,1,2,3\n",
			"members-f.csv has 2 factors per member, titles-f.csv 3 per title"},
		{"NaN", mf, strings.Replace(tf, "t3,6,3", "t3,NaN,3", 1), `titles-f.csv: line 7, column "f0": "NaN": a factor must be a finite number`},
		{"Inf", strings.Replace(mf, "m2,0,1", "m2,0,Inf", 1), tf, `members-f.csv: line 2, column "f1": "Inf"`},
		{"too large", mf, strings.Replace(tf, "t5,4,5", "t5,4,1e10", 1), `titles-f.csv: line 5, column "f1": "1e10": a factor must be a finite number of magnitude at most 1e+09`},
		{"not a number", mf, strings.Replace(tf, "t2,7,2", "t2,seven,2", 1), `line 8, column "f0": "seven"`},
		{"empty cell", mf, strings.Replace(tf, "t2,7,2", "t2,,2", 1), `line 8, column "f0": ""`},
		{"duplicate title", mf, tf + "t4,1,1\n", `titles-f.csv: line 10, column "title": title "t4" again (first on line 6)`},
		{"duplicate member", mf + "m1,2,2\n", tf, `members-f.csv: line 4, column "member": member "m1" again (first on line 3)`},
		{"unknown title", mf, tf + "t99,1,1\n", `titles-f.csv: line 10, column "title": title "t99" is not in the catalog`},
		{"unknown member", mf + "m99,1,1\n", tf, `members-f.csv: line 4, column "member": member "m99" is in neither`},
		{"a title without factors", mf, strings.Replace(tf, "t6,3,6\n", "", 1), `titles-f.csv: no factors for 1 titles of the catalog: "t6"`},
		{"a member with history without factors", "member,f0,f1\nm1,1,0\n", tf, `members-f.csv: no factors for 1 members with interactions: "m2"`},
		{"id column", strings.Replace(mf, "member,", "user,", 1), tf, `members-f.csv: line 1, column "user": the first column must be "member"`},
		{"factor names", mf, strings.Replace(tf, "f0,f1", "f1,f0", 1), `titles-f.csv: line 1, column "f1": factor column 1 must be named f0`},
		{"no factors", "member\nm1\n", tf, "members-f.csv: line 1: 0 factor columns"},
		{"ragged", mf, tf + "t9,1\n", "titles-f.csv: line 10"},
	} {
		m, err := importFactors(t, d, c.members, c.titles)
		if m != nil || !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid input saying %q", c.name, err, c.want)
		}
		var ie *csvtable.InputError
		if c.name != "different K" && !errors.As(err, &ie) {
			t.Errorf("%s: %T is not a located input error", c.name, err)
		}
	}
}
