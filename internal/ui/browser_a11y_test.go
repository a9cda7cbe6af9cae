package ui_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserPage is a page of the populated home and what shows it is drawn.
type browserPage struct{ name, path, wait string }

func browserPages(p *populated) []browserPage {
	return []browserPage{
		{"overview", "/", `.dag svg`},
		{"runs", "/runs", `table.list tbody tr`},
		{"run", fmt.Sprintf("/runs/%d", p.ok), `#dag svg`},
		{"run-step", fmt.Sprintf("/runs/%d?step=transform", p.ok), `section#step-transform table`},
		{"run-failed", fmt.Sprintf("/runs/%d", p.failed), `button[data-action="resume"]`},
		{"task", fmt.Sprintf("/runs/%d/tasks/load/0", p.ok), `pre.out`},
		{"task-failed", fmt.Sprintf("/runs/%d/tasks/load/0", p.failed), `pre.err`},
		{"artifact-json", fmt.Sprintf("/runs/%d/artifacts/load/0/metrics.json", p.ok), `pre.out`},
		{"artifact-csv", fmt.Sprintf("/runs/%d/artifacts/extract/0/table.csv", p.ok), `table.csv`},
		{"artifact-image", fmt.Sprintf("/runs/%d/artifacts/load/0/pixel.png", p.ok), `img.preview`},
		{"flows", "/flows", `table.list`},
		{"flow", "/flows/etl", `pre.diff`},
		{"compare-url", fmt.Sprintf("/compare?run=%d&run=%d&run=%d", p.ok, p.ok2, p.failed), `table.compare`},
		{"signals", "/signals?flow=etl", `.dag svg`},
		{"models", "/models", `table.list`},
		{"features", "/features", `table.list`},
		{"docs", "/docs", `article.md .dag svg`},
		{"docs-lineage", "/docs?view=lineage.md", `article.md .dag svg`},
		{"model", "/models/churn", `.chart .uplot canvas`},
		{"experiment", "/experiments/button_color", `.chart .uplot canvas`},
		{"missing", "/runs/99999", `p.error`},
	}
}

// focusables lists, in document order, what a keyboard user must be able
// to reach: every link, button and form control that is rendered (not in
// a closed <details>, not display:none). It is kept in the page as
// window.__want so each Tab's focus can be found in it.
const focusables = `(() => {
  const sel = 'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';
  window.__want = [...document.querySelectorAll(sel)].filter(e => e.getClientRects().length > 0 && e.checkVisibility({visibilityProperty: true}));
  window.__describe = e => {
    const t = (e.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    const h = e.getAttribute('href');
    return '<' + e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (h ? ' href=' + h : '') + '>' + t;
  };
  return window.__want.map(window.__describe);
})()`

// focused says where the focus is after a Tab: its place in __want (-1 when
// it is not there), and whether it shows: baton's outline (2px at least)
// or a box-shadow, not the browser's thin default nor none.
const focused = `(() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) { return {index: -2, what: 'body'}; }
  const cs = getComputedStyle(e);
  const shows = (cs.outlineStyle !== 'none' && cs.outlineStyle !== 'auto' && parseFloat(cs.outlineWidth) >= 2) || cs.boxShadow !== 'none';
  const scroller = e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight;
  return {index: window.__want.indexOf(e), what: window.__describe(e), shows: shows, outline: cs.outlineStyle + ' ' + cs.outlineWidth, scroller: scroller};
})()`

type focus struct {
	Index    int    `json:"index"`
	What     string `json:"what"`
	Shows    bool   `json:"shows"`
	Outline  string `json:"outline"`
	Scroller bool   `json:"scroller"`
}

// checkKeyboard opens each main page and presses Tab from the top: every
// link, button and control is reached once, in document order, and shows
// where the focus is; the skip link (the first stop) moves the focus to
// the content.
func checkKeyboard(t *testing.T, b *browser, p *populated) {
	for _, pg := range []struct{ name, path string }{
		{"overview", "/"}, {"runs", "/runs"}, {"run", fmt.Sprintf("/runs/%d", p.ok)}, {"models", "/models"}, {"features", "/features"},
	} {
		path := pg.path
		t.Run(pg.name, func(t *testing.T) {
			b.do(t, "open "+path, chromedp.Navigate(p.url+path), chromedp.WaitVisible(css(`main#main`)))
			want := get(t, b, "list the focusable elements", chromedp.Evaluate[[]string](focusables))
			// The skip link, the brand and the seven sections at least.
			if len(want) < 9 {
				t.Fatalf("%s: only %d focusable elements found: %q", path, len(want), want)
			}
			next := 0
			// Every element once, then a few more Tabs to leave the page:
			// the focus goes back to the body or round to the top.
			for range len(want) + 5 {
				b.do(t, "tab", chromedp.KeyEvent("\t"))
				f := get(t, b, "read the focus", chromedp.Evaluate[focus](focused))
				if f.Index == -2 || (f.Index == 0 && next > 0) {
					break
				}
				if !f.Shows {
					t.Errorf("%s: the focus on %s does not show (outline %s)", path, f.What, f.Outline)
				}
				switch {
				case f.Index == -1 && f.Scroller:
					// A scrolling box with nothing focusable inside takes
					// the focus, so that the keyboard can scroll it.
				case f.Index == -1:
					t.Errorf("%s: Tab reached %s, which is neither a link, a button nor a control", path, f.What)
				case f.Index != next:
					t.Fatalf("%s: Tab %d reached %s, want %s (document order)", path, next+1, f.What, want[next])
				default:
					next++
				}
			}
			t.Logf("%s: Tab reached %d links, buttons and controls in order", path, next)
			if next < len(want) {
				t.Errorf("%s: Tab reached %d of %d elements; never %s", path, next, len(want), want[next])
			}
			if errs := b.errors(); len(errs) > 0 {
				t.Errorf("%s: console errors:\n%s", path, strings.Join(errs, "\n"))
			}

			// The skip link: the first Tab, then Enter, puts the focus on
			// the content, and the next Tab on the content's first stop.
			b.do(t, "reopen "+path, chromedp.Navigate(p.url+path), chromedp.WaitVisible(css(`main#main`)))
			get(t, b, "list", chromedp.Evaluate[[]string](focusables))
			b.do(t, "tab to the skip link", chromedp.KeyEvent("\t"))
			if f := get(t, b, "read the focus", chromedp.Evaluate[focus](focused)); !strings.Contains(f.What, "Skip to content") {
				t.Fatalf("%s: the first Tab reaches %s, not the skip link", path, f.What)
			}
			b.do(t, "follow the skip link", chromedp.KeyEvent("\r"))
			if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`document.activeElement && document.activeElement.id === 'main'`,
				chromedp.WithPollingTimeout(5*time.Second))); err != nil {
				f := get(t, b, "read the focus", chromedp.Evaluate[focus](focused))
				t.Fatalf("%s: Enter on the skip link leaves the focus on %s, not on main#main: %v", path, f.What, err)
			}
			b.do(t, "tab into the content", chromedp.KeyEvent("\t"))
			f := get(t, b, "read the focus", chromedp.Evaluate[focus](focused))
			first := get(t, b, "the content's first stop", chromedp.Evaluate[int](`window.__want.findIndex(e => document.getElementById('main').contains(e))`))
			if first >= 0 && f.Index != first {
				t.Errorf("%s: after the skip link Tab reaches %s, want %s", path, f.What, want[first])
			}
		})
	}
}

// overflow lists what sticks out of the document to the right, outside
// any box that scrolls by itself (a table or graph in an overflow
// container may scroll; the page must not).
const overflow = `(() => {
  const root = document.documentElement, w = root.clientWidth;
  if (root.scrollWidth <= w) { return []; }
  const scrolls = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') { return true; } } return false; };
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    const p = e.parentElement;
    if (r.right > w + 0.5 && r.width > 0 && !scrolls(e) && (p === document.body || p.getBoundingClientRect().right <= w + 0.5)) {
      out.push('<' + e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().replace(/\s+/g, '.') : '') + '> right edge ' + Math.round(r.right) + 'px');
    }
  }
  return ['the document is ' + root.scrollWidth + 'px wide in ' + w + 'px', ...out.slice(0, 8)];
})()`

// checkZoom200 shows every page as at 200% zoom on a 1280px window (640
// CSS pixels at two device pixels each): nothing makes the document
// scroll sideways, only boxes meant to scroll (wide tables, graphs) do.
func checkZoom200(t *testing.T, b *browser, p *populated) {
	b.do(t, "zoom to 200%", chromedp.EmulateViewport(640, 450, chromedp.EmulateScale(2)))
	defer b.do(t, "zoom back", chromedp.EmulateViewport(1280, 900))
	for _, pg := range browserPages(p) {
		b.do(t, "open "+pg.path, chromedp.Navigate(p.url+pg.path), chromedp.WaitVisible(css(pg.wait)))
		b.shot(t, pg.name+"-zoom200")
		if out := get(t, b, "measure "+pg.path, chromedp.Evaluate[[]string](overflow)); len(out) > 0 {
			t.Errorf("%s at 200%%: %s", pg.path, strings.Join(out, "; "))
		}
		errs := b.errors()
		if pg.name != "missing" && len(errs) > 0 {
			t.Errorf("%s: console errors:\n%s", pg.path, strings.Join(errs, "\n"))
		}
	}
}
