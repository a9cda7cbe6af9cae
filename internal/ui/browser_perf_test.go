package ui_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/ui"
)

// The targets for the page of a 10,000-task foreach, as a browser
// sees them.
const (
	loadTarget = 1500 * time.Millisecond // navigation start to the load event
	liveTarget = time.Second             // a task's change in the store to the open page showing it
	perfRounds = 5
)

// TestBrowserLargeForeach measures, in headless Chromium, the page of a
// running run whose foreach has 10,000 tasks: how long it takes to load
// (Navigation Timing, cache disabled so every load fetches the page and
// its assets), and how long a task's change in the store takes to reach
// the open page through the live stream (the UI's default poll, 250 ms).
// Medians of five: the machine is shared and noisy, so a single slow
// sample does not fail the test, a slow median does.
//
// Under the race detector the store is about ten times slower, so the run
// has 1,000 tasks: the targets stay the same and still tell a page that
// loads or updates slowly; the figures of docs/ui.md are of 10,000 tasks
// without it.
//
// Not parallel, so the package's other browser tests do not run beside it.
func TestBrowserLargeForeach(t *testing.T) {
	b := newBrowser(t)
	n := 10_000
	if raceOn {
		n = 1_000
	}
	st, id := fanStore(t, n)
	u, err := ui.New(ui.Deps{Store: st, Authorize: admin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u.Handler())
	// A live page holds its stream open: end the streams first, as the
	// server does when it stops, or Close waits for them.
	t.Cleanup(func() { u.CloseStreams(); srv.Close() })
	page := fmt.Sprintf("%s/runs/%d", srv.URL, id)
	t.Logf("a foreach of %s tasks; load average: %s", comma(n), loadavg())

	t.Run("load", func(t *testing.T) {
		if _, err := chromedp.Call(b.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
			t.Fatalf("disable the cache: %v", err)
		}
		t.Cleanup(func() {
			_, _ = chromedp.Call(b.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: false})
		})
		var loads, server []time.Duration
		for i := range perfRounds {
			b.do(t, "leave the page", chromedp.Navigate("about:blank"))
			b.do(t, "load the run page", chromedp.Navigate(page), chromedp.WaitVisible(css(`#dag svg`)))
			// loadEventEnd is 0 until the load event's handlers have
			// returned, which may be just after Navigate comes back.
			nt := get(t, b, "navigation timing", chromedp.Poll[struct {
				Load     float64 `json:"load"`
				Response float64 `json:"response"`
				Size     int     `json:"size"`
			}](`(() => {
  const e = performance.getEntriesByType('navigation')[0];
  return e && e.loadEventEnd > 0 && {load: e.loadEventEnd - e.startTime, response: e.responseEnd - e.requestStart, size: e.encodedBodySize};
})()`))
			load, resp := ms(nt.Load), ms(nt.Response)
			loads, server = append(loads, load), append(server, resp)
			t.Logf("load %d: %v to the load event (request to last byte of the page %v, %d KB)", i+1, load, resp, nt.Size/1024)
		}
		if errs := b.errors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
		med := median(loads)
		t.Logf("%s-task run page in Chromium: median %v to the load event (of %v), request to last byte median %v", comma(n), med, loads, median(server))
		if med > loadTarget {
			t.Errorf("the page of a %s-task run loads in %v (median of %v), target %v", comma(n), med, loads, loadTarget)
		}
	})

	t.Run("live", func(t *testing.T) {
		b.do(t, "open the running run", chromedp.Navigate(page), chromedp.WaitVisible(css(`#run-live[sse-connect]`)))
		// The observer runs in the page's world but is installed through
		// the devtools protocol, so the page's CSP (no inline script) does
		// not apply to it. It notes when the live part's count of the work
		// step first reads __want.
		get(t, b, "watch the live part", chromedp.Evaluate[chromedp.Void](`(() => {
  window.__want = ''; window.__seen = 0;
  new MutationObserver(() => {
    const c = document.querySelector('#step-work .count');
    if (!window.__seen && window.__want && c && c.textContent === window.__want) { window.__seen = performance.now(); }
  }).observe(document.getElementById('run-live'), {childList: true, subtree: true, characterData: true});
})()`))
		ctx := context.Background()
		done := n / 2
		// change finishes the next task and returns how long the open
		// page took to show it.
		change := func() time.Duration {
			done++
			want := fmt.Sprintf("%s/%s tasks done", comma(done), comma(n))
			t0 := get(t, b, "arm", chromedp.Evaluate[float64](fmt.Sprintf(`window.__seen = 0; window.__want = %q; performance.now()`, want)))
			at := time.Now()
			zero := 0
			if err := st.Apply(ctx, "bench", &store.Batch{Tasks: []store.TaskChange{{
				TaskKey: store.TaskKey{RunID: id, Step: "work", Index: done - 1}, Status: store.TaskSucceeded,
				Attempts: 1, StartedAt: at.Add(-20 * time.Millisecond), FinishedAt: at, ExitCode: &zero}}}); err != nil {
				t.Fatal(err)
			}
			seen := get(t, b, "see "+want, chromedp.Poll[float64](`window.__seen`, chromedp.WithPollingTimeout(30*time.Second)))
			return ms(seen - t0)
		}
		// A first change, not measured, shows the stream is open. (Its
		// first message, the page as it is, may come before the observer
		// above is installed, so it cannot be waited for.)
		t.Logf("warm-up change: on the page after %v", change())
		var lat []time.Duration
		for i := range perfRounds {
			d := change()
			lat = append(lat, d)
			t.Logf("change %d: on the page after %v", i+1, d)
		}
		if errs := b.errors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
		med := median(lat)
		t.Logf("%s-task run page, a task's change to the open page: median %v (of %v)", comma(n), med, lat)
		if med > liveTarget {
			t.Errorf("a task's change reaches the open page of a %s-task run in %v (median of %v), target %v", comma(n), med, lat, liveTarget)
		}
	})
}

func ms(f float64) time.Duration {
	return time.Duration(f * float64(time.Millisecond)).Round(time.Millisecond)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// comma writes n as the pages do (1,234).
func comma(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// loadavg is the machine's load average, logged beside the figures: they
// mean little without it.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
