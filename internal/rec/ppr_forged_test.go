package rec

import (
	"context"
	"strings"
	"testing"
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
