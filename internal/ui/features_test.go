package ui_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/ui"
)

// TestFreshnessAge: the features page says how old a source's last event
// is, that a source with no event yet is stale, and that an event stamped
// after the server's clock (a baton demo home, whose simulated days may
// lie ahead, read by a server on the real clock) is neither "no event"
// nor an age "ago".
func TestFreshnessAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	path := filepath.Join(dir, "features.yaml")
	if err := os.WriteFile(path, []byte(featuresDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := feature.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, path, d); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    feature.Stale
		want string
	}{
		{"an event 90s ago", feature.Stale{Age: 90 * time.Second}, `<td>1m30s ago <span class="badge st-succeeded">fresh</span></td>`},
		{"an event 2h ago", feature.Stale{Age: 2 * time.Hour, Breached: true}, `<td>2h00m ago <span class="badge st-failed">stale</span></td>`},
		{"no event yet", feature.Stale{Age: -1, Breached: true}, `<td>no event yet <span class="badge st-failed">stale</span></td>`},
		{"an event ahead of the clock", feature.Stale{Age: -3 * time.Hour}, `<td>stamped 3h00m after this server&#39;s clock <span class="badge st-succeeded">fresh</span></td>`},
	} {
		s := c.s
		s.Feature, s.Source, s.SLA = "minutes_24h", "plays", time.Hour
		u, err := ui.New(ui.Deps{Store: st, Authorize: admin, Freshness: func(time.Time) []feature.Stale { return []feature.Stale{s} }})
		if err != nil {
			t.Fatal(err)
		}
		body := get200(t, u.Handler(), "/features")
		if !strings.Contains(body, c.want) {
			i := strings.Index(body, "minutes_24h")
			t.Errorf("%s: no %q in the features page:\n%s", c.name, c.want, body[i:min(len(body), i+900)])
		}
	}
}
