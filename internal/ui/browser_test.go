package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

// browser is a headless Chromium driven by chromedp, with what its pages
// wrote to the console as errors.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
	dir  string // where screenshots go
}

// newBrowser starts Debian's chromium with the flags of the project's
// machines, or skips the test when it is not installed (fails under CI).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed (CI must install it: apt-get install -y chromium): %v", err)
		}
		t.Skip("chromium is not installed: apt-get install -y chromium to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The browser lives as long as the context of its first action: no
	// timeout here, one per action below.
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browser{ctx: ctx, dir: screenshotDir(t)}
	if _, err := chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// screenshotDir is $BATON_SCREENSHOTS, else testdata/screenshots (ignored
// by git): a person looks at them after a run.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("BATON_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// errors returns and forgets the console errors seen so far.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errs
	b.errs = nil
	return e
}

// do runs actions, each bounded, failing the test with where the page was.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		t.Fatalf("%s (at %s): %v", what, loc, err)
	}
}

func get[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		t.Fatalf("%s (at %s): %v", what, loc, err)
	}
	return v
}

func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	png := get(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// TestBrowser drives the UI as a person would: signs in through a login
// link, opens every page of a populated home, goes through the main pages
// by keyboard, reads every page at 200% zoom, follows a live run to its
// end, cancels one, resumes one, compares two, and checks that a page of
// another origin cannot change anything.
func TestBrowser(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	p := newPopulated(t)
	b.do(t, "sign in", chromedp.Navigate(p.s.LoginURL()), chromedp.WaitVisible(chromedp.Search(`//header[contains(., "Signed in as local (admin)")]`)))

	t.Run("pages", func(t *testing.T) {
		pages := browserPages(p)
		for _, pg := range pages {
			b.do(t, "open "+pg.path, chromedp.Navigate(p.url+pg.path), chromedp.WaitVisible(css(pg.wait)))
			b.shot(t, pg.name)
			errs := b.errors()
			switch {
			case pg.name == "missing" && len(errs) == 0:
				// The browser logs a 404 as an error: seeing it proves the
				// console is listened to.
				t.Errorf("%s: no console error for a 404 page: the console listener hears nothing", pg.path)
			case pg.name != "missing" && len(errs) > 0:
				t.Errorf("%s: console errors:\n%s", pg.path, strings.Join(errs, "\n"))
			}
		}
		// The description with markup is text on the page.
		b.do(t, "open the flow", chromedp.Navigate(p.url+"/flows/etl"), chromedp.WaitVisible(css(`p.desc`)))
		desc := get(t, b, "read the description", chromedp.Text(css(`p.desc`)))
		if !strings.Contains(desc, `<script>alert("pwned")</script>`) {
			t.Errorf("description shown as %q", desc)
		}
	})

	t.Run("keyboard", func(t *testing.T) { checkKeyboard(t, b, p) })
	t.Run("zoom200", func(t *testing.T) { checkZoom200(t, b, p) })

	t.Run("live", func(t *testing.T) {
		gate := filepath.Join(p.dir, "gate-live")
		id := p.start(t, "gated", map[string]any{"gate": gate})
		b.do(t, "open the running run", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", p.url, id)),
			chromedp.WaitVisible(css(`#run-status[data-status="running"]`)), chromedp.WaitVisible(css(`#run-live[sse-connect]`)))
		b.shot(t, "run-live")
		if err := writeFile(gate); err != nil {
			t.Fatal(err)
		}
		// No reload: the page changes by itself when the run ends.
		b.do(t, "see the run end", chromedp.WaitVisible(css(`#run-status[data-status="succeeded"]`)),
			chromedp.WaitVisible(chromedp.Search(`//section[@id="step-after"]//span[contains(@class, "badge") and text()="succeeded"]`)))
		b.shot(t, "run-live-done")
		if errs := b.errors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("cancel", func(t *testing.T) {
		id := p.start(t, "gated", map[string]any{"gate": filepath.Join(p.dir, "never")})
		b.do(t, "cancel", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", p.url, id)),
			chromedp.WaitVisible(css(`#run-status[data-status="running"]`)),
			chromedp.Click(css(`button[data-action="cancel"]`)),
			chromedp.WaitVisible(css(`#run-status[data-status="cancelled"]`)))
		b.shot(t, "run-cancelled")
		if r := p.wait(t, id); r.Status != store.RunCancelled {
			t.Fatalf("run %d: %s after Cancel", id, r.Status)
		}
	})

	t.Run("resume", func(t *testing.T) {
		b.do(t, "resume", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", p.url, p.failed)),
			chromedp.Click(css(`button[data-action="resume"]`)),
			chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//h1[contains(., "Run #") and not(contains(., "Run #%d "))]`, p.failed))))
		loc := get(t, b, "where", chromedp.Location())
		var id int64
		if _, err := fmt.Sscanf(loc, p.url+"/runs/%d", &id); err != nil {
			t.Fatalf("after Resume the page is %s", loc)
		}
		if r, err := p.st.Run(context.Background(), id); err != nil || r.OriginRunID != p.failed {
			t.Fatalf("run %d: %+v %v, want resumed from %d", id, r, err, p.failed)
		}
		p.wait(t, id)
	})

	t.Run("compare", func(t *testing.T) {
		b.do(t, "compare two", chromedp.Navigate(p.url+"/runs?flow=etl&status=succeeded"),
			chromedp.Click(css(fmt.Sprintf(`input[name="run"][value="%d"]`, p.ok))),
			chromedp.Click(css(fmt.Sprintf(`input[name="run"][value="%d"]`, p.ok2))),
			chromedp.Click(css(`#compare button[type="submit"]`)),
			chromedp.WaitVisible(css(`table.compare`)))
		text := get(t, b, "read", chromedp.Text(css(`table.compare`)))
		for _, w := range []string{fmt.Sprintf("#%d", p.ok), fmt.Sprintf("#%d", p.ok2), "load/metrics.accuracy"} {
			if !strings.Contains(text, w) {
				t.Errorf("compare: no %q in %q", w, text)
			}
		}
		b.shot(t, "compare")
	})

	t.Run("other origin", func(t *testing.T) {
		id := p.start(t, "gated", map[string]any{"gate": filepath.Join(p.dir, "never2")})
		testwait.Until(t, 30*time.Second, func() (bool, string) {
			r, err := p.st.Run(context.Background(), id)
			return err == nil && r.Status == store.RunRunning, fmt.Sprintf("%s %v", r.Status, err)
		}, "run %d to run", id)
		cancelURL := fmt.Sprintf("%s/api/v1/runs/%d/cancel", p.url, id)
		// A page on another port of this host: same site, so the browser
		// sends the session cookie with its requests.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			switch r.URL.Path {
			case "/fetch":
				fmt.Fprintf(w, `<!doctype html><body><p id="out">waiting</p><script>
fetch(%q, {method: "POST", credentials: "include", headers: {"Content-Type": "application/json"}, body: "{}"})
  .then(r => { document.getElementById("out").textContent = "answered " + r.status; })
  .catch(e => { document.getElementById("out").textContent = "refused: " + e; })
  .finally(() => { document.body.dataset.done = "1"; });
</script></body>`, cancelURL)
			case "/form":
				fmt.Fprintf(w, `<!doctype html><body><form id="f" method="post" action=%q enctype="text/plain"><input name="{}" value=""></form>
<script>document.getElementById("f").submit();</script></body>`, cancelURL)
			}
		}))
		defer evil.Close()
		b.do(t, "fetch from another origin", chromedp.Navigate(evil.URL+"/fetch"), chromedp.WaitReady(css(`body[data-done="1"]`)))
		out := get(t, b, "read", chromedp.Text(css(`#out`)))
		if !strings.HasPrefix(out, "refused") {
			t.Errorf("a fetch from another origin: %s", out)
		}
		b.do(t, "form POST from another origin", chromedp.Navigate(evil.URL+"/form"))
		get(t, b, "the answer", chromedp.Poll[bool](`document.location.href.includes("/api/v1/runs/") && !!document.body && document.body.innerText.includes("error")`))
		answer := get(t, b, "read", chromedp.Text(css(`body`)))
		if !strings.Contains(answer, "is not this server") {
			t.Errorf("a form POST from another origin was answered %q", answer)
		}
		r, err := p.st.Run(context.Background(), id)
		if err != nil || r.Status != store.RunRunning || r.CancelRequested {
			t.Fatalf("run %d after the other origin's requests: %s cancel requested %v %v", id, r.Status, r.CancelRequested, err)
		}
		b.errors() // the refusals are logged by the browser, as they should be
		if code, body := p.api(t, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), map[string]any{}); code != 202 {
			t.Fatalf("cancel: %d %s", code, body)
		}
		p.wait(t, id)
	})
}
