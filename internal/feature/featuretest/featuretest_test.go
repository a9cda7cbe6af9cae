package featuretest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/feature"
)

// dropping loses the events of its drop-th Apply: a store that accepts
// and forgets.
type dropping struct {
	feature.OnlineStore
	calls, drop int
}

func (d *dropping) Apply(ctx context.Context, source string, evs []feature.Event, retention int64) error {
	d.calls++
	if d.calls == d.drop {
		return nil
	}
	return d.OnlineStore.Apply(ctx, source, evs, retention)
}

// The freshness probe fails on an event that never shows, even on a key
// whose earlier events did (the old benchmark only checked count >= 1, so
// it counted a lost event as fresh).
func TestFreshnessProbeDetectsAMissingEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := feature.NewEngine(BenchCatalog(), t.TempDir(), &dropping{OnlineStore: feature.NewMemory(), drop: 3}, nil)
	defer eng.Close()
	p, err := NewFreshProbe(eng, 2, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := p.One(ctx); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	// The third event is m0's second: lost.
	if _, err := p.One(ctx); err == nil || !strings.Contains(err.Error(), "event 2 (key m0) never became visible: count 1") {
		t.Fatalf("a lost event: %v", err)
	}
}
