package rec

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/fault"
)

// A PPR model file whose title→member graph disagrees with the members'
// histories (damaged, or forged) must not panic when it scores: a walk
// that reaches a member with no titles ends there. (Found by a review's
// byte-flipping harness; it panicked in rng.IntN(0).)
func TestForgedPPRGraphDoesNotPanic(t *testing.T) {
	tr, _ := tiny(t)
	cold, _ := tr.Cut(13) // m3 known, no history
	m, err := Train(context.Background(), KindPPR, cold, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := m.s.(*pprModel)
	for i := range p.TIdx {
		p.TIdx[i] = int32(m.b.member("m3")) // every title's member is m3, who played nothing
	}
	var b strings.Builder
	if err := m.Save(&b); err != nil {
		t.Fatal(err)
	}
	l, err := Load(strings.NewReader(b.String()))
	if err != nil {
		t.Logf("refused: %v", err)
		return
	}
	if got := l.Recommend("m1", Options{N: 3}); len(got) == 0 {
		t.Fatal("a damaged graph answered nothing; popularity should still order the titles")
	}
}

// A factor model file whose factor count times the members (or titles)
// overflows to the length of its factors must be refused: K = 2⁶² with
// four members and four titles and no factors passed the size check
// (4·2⁶² wraps to 0) and the first score sliced X[0:2⁶²] and panicked.
func TestForgedFactorCountIsRefused(t *testing.T) {
	catalog := "title,name,genres,creator,new_creator,released,markets\nA,a,x,c,false,2025-01-01,\nB,b,x,c,false,2025-01-01,\nC,c,x,c,false,2025-01-01,\nD,d,x,c,false,2025-01-01,\n"
	members := "member,market,joined\nm1,US,\nm2,US,\nm3,US,\nm4,US,\n"
	inter := "member,title,ts\nm1,A,1\nm2,B,2\nm3,C,3\nm4,D,4\nm1,B,5\n"
	d, err := ReadDataset(strings.NewReader(catalog), "catalog.csv", strings.NewReader(members), "members.csv", strings.NewReader(inter), "inter.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindALS, KindMultiTask, KindBlend} {
		var p map[string]string
		if kind == KindBlend {
			p = map[string]string{"validation": "0.5"}
		}
		m, err := Train(context.Background(), kind, d, p)
		if err != nil {
			t.Fatal(err)
		}
		switch s := m.s.(type) {
		case *alsModel:
			s.K, s.X, s.Y = 1<<62, nil, nil
		case *blendModel:
			s.ALS.K, s.ALS.X, s.ALS.Y = 1<<62, nil, nil
		case *mtModel:
			s.K, s.P, s.Q = 1<<62, nil, nil
		}
		var b strings.Builder
		if err := m.Save(&b); err != nil {
			t.Fatal(err)
		}
		_, err = Load(strings.NewReader(b.String()))
		if !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "do not match 4 members and 4 titles") {
			t.Errorf("%s: a factor count that overflows the size check: %v, want refused as invalid", kind, err)
		}
	}
}

// A neighbour list or graph whose offsets start below 0 must be refused:
// the offsets were checked to ascend and to end at the lists' length, not
// to start at 0, so Ptr[0] = -1 loaded and the first Similar indexed
// Nbr[-1]. On a server that panic was in SimilarIndexes' goroutines,
// which a version entering shadow or production runs: it took the whole
// server down, and again at each start.
func TestForgedOffsetsAreRefused(t *testing.T) {
	tr, _ := tiny(t)
	for _, kind := range []string{KindKNN, KindPPR, KindBlend} {
		for _, part := range []string{"knn", "ppr"} {
			var p map[string]string
			if kind == KindBlend {
				p = map[string]string{"validation": "0.5"}
			} else if kind != part {
				continue
			}
			m, err := Train(context.Background(), kind, tr, p)
			if err != nil {
				t.Fatal(err)
			}
			knn, ppr := m.s, m.s
			if bl, ok := m.s.(*blendModel); ok {
				knn, ppr = bl.KNN, bl.PPR
			}
			if part == "knn" {
				knn.(*knnModel).Ptr[0] = -1
			} else {
				ppr.(*pprModel).TPtr[0] = -1
			}
			var b strings.Builder
			if err := m.Save(&b); err != nil {
				t.Fatal(err)
			}
			l, err := Load(strings.NewReader(b.String()))
			if !errors.Is(err, fault.Invalid) {
				t.Errorf("%s with its %s offsets starting at -1: %v, want refused as invalid", kind, part, err)
				if l != nil {
					func() {
						defer func() { _ = recover() }()
						l.Similar("A", 3, "")
					}()
				}
			}
		}
	}
}
