package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
	"github.com/baton-ml/baton/internal/ui"
)

// TestPagesRender opens every page of a populated home with a token and
// checks each shows what it is for, escaped, with the UI's policy.
func TestPagesRender(t *testing.T) {
	t.Parallel()
	checkPages(t, newPopulated(t))
}

// TestPagesRenderPostgres is TestPagesRender on a PostgreSQL home.
func TestPagesRenderPostgres(t *testing.T) {
	t.Parallel()
	checkPages(t, newPopulatedOn(t, true))
}

func checkPages(t *testing.T, p *populated) {
	t.Helper()
	pages := []struct {
		path string
		want []string
	}{
		{"/", []string{"Signed in as local (admin)", "The loop", "<svg", "runs</text>", "3 runs, 1 failed", "data_ready → 2 runs", `href="/flows/etl"`, `href="/flows/report"`,
			`href="/models/churn"`, `href="/experiments/button_color"`, `href="/signals?signal=data_ready"`, "Newest run"}},
		{"/runs", []string{fmt.Sprintf(`href="/runs/%d"`, p.ok), "etl", "report"}},
		{"/runs?flow=etl&status=failed", []string{fmt.Sprintf("#%d", p.failed), "failed"}},
		{fmt.Sprintf("/runs/%d", p.ok), []string{"<svg", "transform", "foreach 3/3", "Timeline", "extract", "succeeded", `class="timeline"`}},
		{fmt.Sprintf("/runs/%d?step=transform", p.ok), []string{"#0", "#2", "Tasks 1–3 of 3"}},
		{fmt.Sprintf("/runs/%d", p.failed), []string{"failed", "Resume run"}},
		{fmt.Sprintf("/runs/%d/tasks/load/0", p.ok), []string{"Attempts", "loaded", "metrics.json", "pixel.png", "/api/v1/artifacts/"}},
		{fmt.Sprintf("/runs/%d/tasks/load/0", p.failed), []string{"load failed on purpose", "stderr"}},
		{fmt.Sprintf("/runs/%d/tasks/extract/0", p.ok), []string{"extracted 3 items &lt;script&gt;x&lt;/script&gt;", "table.csv"}},
		{fmt.Sprintf("/runs/%d/artifacts/load/0/metrics.json", p.ok), []string{`&#34;accuracy&#34;: 0.3`}},
		{fmt.Sprintf("/runs/%d/artifacts/extract/0/table.csv", p.ok), []string{"<th scope=\"col\">score</th>", "&lt;b&gt;cat&lt;/b&gt;"}},
		{fmt.Sprintf("/runs/%d/artifacts/load/0/pixel.png", p.ok), []string{`src="data:image/png;base64,iVBOR`}},
		{fmt.Sprintf("/runs/%d/artifacts/transform/1/out.txt", p.ok), []string{"item-1"}},
		// An artifact in a folder: the task page links its preview, which opens.
		{fmt.Sprintf("/runs/%d/tasks/extract/0", p.ok), []string{fmt.Sprintf(`href="/runs/%d/artifacts/extract/0/parts/p1.txt"`, p.ok)}},
		{fmt.Sprintf("/runs/%d/artifacts/extract/0/parts/p1.txt", p.ok), []string{"parts/p1.txt", "part one"}},
		{fmt.Sprintf("/compare?run=%d&run=%d", p.ok, p.ok2), []string{"Params", "load/metrics.accuracy", "0.3", "0.5", `class="differ"`}},
		{"/flows", []string{"etl", "gated", "report"}},
		{"/flows/etl", []string{"Versions", "v2", "Diff", `class="ddel">-   n: {type: int, default: 3}`, `class="dadd">&#43;   n: {type: int, default: 4}`, "Recent runs"}},
		{"/flows/report", []string{"on signal data_ready"}},
		{"/signals", []string{"data_ready", "date string", "Runs started", "<svg"}},
		{"/signals?flow=etl", []string{"these flows downstream", "report"}},
		{"/signals?signal=data_ready", []string{"2026-12-03"}},
		{"/models", []string{`href="/models/churn"`, "v2", `href="/experiments/button_color"`, "running"}},
		{"/models/churn", []string{"st-production", "auc=", fmt.Sprintf(`href="/runs/%d"`, p.ok2), "Rollout #", "marginal", "88.0", "data-chart=",
			// Shares are percents, as serve stores them.
			"Stages 5% → 25% → 50% → 100%", "<td>25%</td>", `&#34;label&#34;:&#34;canary share %&#34;,&#34;y&#34;:[5,25,25]`, "trained on &lt;b&gt;fresh&lt;/b&gt; data", "canary → production", "uPlot.iife.min.js"}},
		{"/features", []string{"plays_1h", "Plays in the last hour &lt;i&gt;per member&lt;/i&gt;.", "minutes_24h", "badge st-succeeded\">fresh", "gate-warned", "0.4 below 0.5", "never computed", "title_id:string",
			"Quality gates over time", `id="gates-minutes_24h"`, "gate-blocked\">blocked", "not_null_rate 0.2 block", "<td>12.5</td>", "<td>0.200</td>", "not_null_rate 0.4 warn",
			// A source with no event since the server started breaks its SLA.
			`views_1h`, `<td>no event yet <span class="badge st-failed">stale</span></td>`}},
		{"/docs", []string{"Views", "<svg", "<table>", "s_extract", "etl"}},
		{"/docs?view=lineage.md", []string{"<svg", "data_ready"}},
		{"/experiments/quiet", []string{"No data for the guardrails yet", `<span class="badge">no data</span>`}},
		{"/experiments/button_color", []string{"treatment", "clicks", "sequential", "Intervals over time", `data-chart="{&#34;title&#34;:&#34;clicks: lift`, "Guardrails", "errors"}},
	}
	for _, pg := range pages {
		code, body, h := p.get(t, pg.path)
		if code != 200 {
			t.Errorf("GET %s: %d\n%s", pg.path, code, body)
			continue
		}
		for _, w := range pg.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q in\n%s", pg.path, w, body)
			}
		}
		if got := h.Get("Content-Security-Policy"); got != ui.CSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", pg.path, got, ui.CSP)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", pg.path)
		}
		// No page carries a script or style of its own.
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") || strings.Contains(body, " style=") ||
			strings.Contains(body, " onclick=") {
			t.Errorf("GET %s: inline script or style in\n%s", pg.path, body)
		}
	}
}

// TestOnePointIsNoChart: a rollout judged once gets its table, not a chart
// (uPlot stretches a single point's time axis over years).
func TestOnePointIsNoChart(t *testing.T) {
	t.Parallel()
	p := newPopulated(t)
	_, body, _ := p.get(t, "/models/churn")
	if n := strings.Count(body, "data-chart="); n != 1 {
		t.Errorf("%d charts on the page of churn, want 1 (the rollout judged three times)", n)
	}
	if !strings.Contains(body, "<td>95.0</td>") {
		t.Errorf("the rollout judged once is not in the page:\n%s", body)
	}
}

// TestEscapesUserValues: a flow's description with markup is shown as
// text on every page that shows it.
func TestEscapesUserValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyFlows(t, signalsDoc, etlFlow)
	_, body, _ := e.get(t, "/flows/etl")
	if strings.Contains(body, `<script>alert("pwned")`) {
		t.Fatalf("the description went out as markup:\n%s", body)
	}
	if !strings.Contains(body, `Loads the &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; data &amp; more`) {
		t.Fatalf("the description is not shown escaped:\n%s", body)
	}
}

// TestMissingIs404Page: a run, task, flow or page that does not exist
// answers a 404 page (HTML, not JSON); an unknown API path stays JSON.
func TestMissingIs404Page(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyFlows(t, signalsDoc, etlFlow)
	for _, path := range []string{"/runs/999", "/runs/abc", "/runs/999/tasks/x/0", "/flows/nope", "/nope", "/runs/1/artifacts/a/0/b", "/models/nope", "/experiments/nope"} {
		code, body, h := e.get(t, path)
		if code != 404 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "404 Not Found") {
			t.Errorf("GET %s: %d %s\n%s", path, code, h.Get("Content-Type"), body)
		}
	}
	code, body, h := e.get(t, "/api/v1/nope")
	if code != 404 || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/v1/nope: %d %s %s", code, h.Get("Content-Type"), body)
	}
	code, body, _ = e.get(t, "/runs?status=bogus")
	if code != 400 || !strings.Contains(body, "bogus") {
		t.Errorf("GET /runs?status=bogus: %d\n%s", code, body)
	}
}

// TestSignInPage: without a token or session a page says how to sign in
// and shows nothing of the home.
func TestSignInPage(t *testing.T) {
	t.Parallel()
	p := newEnv(t)
	p.applyFlows(t, signalsDoc, etlFlow)
	for _, path := range []string{"/", "/runs", "/flows/etl", "/signals"} {
		resp, err := p.client.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		resp.Body.Close()
		body := b.String()
		if resp.StatusCode != 401 || !strings.Contains(body, "baton login") || strings.Contains(body, "etl") {
			t.Errorf("GET %s without a token: %d\n%s", path, resp.StatusCode, body)
		}
	}
	// A viewer sees no buttons that change runs; an operator does.
	for _, c := range []struct {
		role    store.Role
		buttons bool
	}{{store.RoleViewer, false}, {store.RoleOperator, true}} {
		code, b := p.api(t, "POST", "/api/v1/tokens", map[string]any{"name": "t-" + string(c.role), "role": c.role})
		if code != 201 {
			t.Fatalf("token: %d %s", code, b)
		}
		secret := between(string(b), `"secret": "`, `"`)
		id := p.start(t, "etl", map[string]any{"fail": true})
		p.wait(t, id)
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/runs/%d", p.url, id), nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sb.WriteString(sc.Text())
		}
		resp.Body.Close()
		if has := strings.Contains(sb.String(), `data-action="resume"`); resp.StatusCode != 200 || has != c.buttons {
			t.Errorf("%s: %d, resume button shown %v, want %v", c.role, resp.StatusCode, has, c.buttons)
		}
	}
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestRunEventsStreamUntilDone: a run page's stream sends the changing
// part when the run changes, and "done" when it ends.
func TestRunEventsStreamUntilDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyFlows(t, gatedFlow)
	gate := e.dir + "/gate"
	id := e.start(t, "gated", map[string]any{"gate": gate})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/ui/runs/%d/events", e.url, id), nil)
	req.Header.Set("Authorization", "Bearer "+e.s.HomeToken())
	req.Header.Set("Accept", "text/event-stream")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	var events []string
	opened := false
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
		}
		if strings.Contains(line, `data-status="running"`) && !opened {
			// Seen running: let it finish.
			opened = true
			if err := writeFile(gate); err != nil {
				t.Fatal(err)
			}
		}
		if line == "event: done" {
			break
		}
	}
	if !opened || len(events) < 2 || events[len(events)-1] != "done" {
		t.Fatalf("events %v (saw it running: %v, err %v)", events, opened, sc.Err())
	}
}

// TestCloseStreams: a live stream ends when the server shuts down
// (CloseStreams), however long its run goes on.
func TestCloseStreams(t *testing.T) {
	t.Parallel()
	st, id := fanStore(t, 10) // running, and nothing will end it
	u, err := ui.New(ui.Deps{Store: st, Authorize: admin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(fmt.Sprintf("%s/ui/runs/%d/events", srv.URL, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() && sc.Text() != "event: run" {
	}
	u.CloseStreams()
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream still runs 10 s after CloseStreams")
	}
}

// TestRunningTaskLogTail: a running task's page shows its output so far
// (read from the engine that runs it, escaped), marked running, and the
// stored output once its attempt ends.
func TestRunningTaskLogTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyFlows(t, `name: tailed
params:
  gate: {type: string}
steps:
  - name: wait
    run: |
      echo 'line-1 <b>so far</b>'
      echo 'a warning' >&2
      while [ ! -e "$BATON_PARAM_GATE" ]; do sleep 0.05; done
      echo line-2
`)
	gate := e.dir + "/tail-gate"
	id := e.start(t, "tailed", map[string]any{"gate": gate})
	path := fmt.Sprintf("/ui/runs/%d/tasks/wait/0/log", id)
	testwait.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := e.get(t, path)
		return code == 200 && strings.Contains(body, "line-1 &lt;b&gt;so far&lt;/b&gt;") && strings.Contains(body, "a warning") &&
			strings.Contains(body, "Attempt 1, running") && strings.Contains(body, "hx-trigger=\"every 1s\"") && !strings.Contains(body, "line-2"), body
	}, "the running task's output so far")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.wait(t, id); r.Status != store.RunSucceeded {
		t.Fatalf("run %d %s", id, r.Status)
	}
	code, body, _ := e.get(t, path)
	if code != 200 || !strings.Contains(body, "line-2") || strings.Contains(body, "running") || strings.Contains(body, "hx-trigger") {
		t.Fatalf("after the attempt: %d %s", code, body)
	}
}

// TestPastAttemptLogNotPolled: while a task's second attempt runs, its page
// asked for the first (failed, stored) attempt shows that output and does
// not poll: a stored attempt does not change, and each poll read its whole
// blob again.
func TestPastAttemptLogNotPolled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyFlows(t, `name: retried
params:
  gate: {type: string}
steps:
  - name: flaky
    retry: {attempts: 2, backoff: 10ms}
    run: |
      if [ "$BATON_ATTEMPT" = 1 ]; then echo first-attempt; exit 3; fi
      echo second-attempt
      while [ ! -e "$BATON_PARAM_GATE" ]; do sleep 0.05; done
`)
	gate := e.dir + "/retry-gate"
	id := e.start(t, "retried", map[string]any{"gate": gate})
	path := fmt.Sprintf("/ui/runs/%d/tasks/flaky/0/log", id)
	testwait.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := e.get(t, path)
		if code != 200 || !strings.Contains(body, "Attempt 2, running") || !strings.Contains(body, "second-attempt") {
			return false, body
		}
		// The engine tails attempt 2 before its row reaches the store.
		tk, err := e.st.Task(context.Background(), store.TaskKey{RunID: id, Step: "flaky"})
		return err == nil && tk.Attempts == 2, fmt.Sprintf("%+v %v", tk, err)
	}, "attempt 2 running, in the store too")
	code, body, _ := e.get(t, path+"?attempt=1")
	if code != 200 || !strings.Contains(body, "first-attempt") || strings.Contains(body, "second-attempt") || strings.Contains(body, "hx-trigger") {
		t.Errorf("attempt 1 while attempt 2 runs: want its stored output, not polled: %d %s", code, body)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.wait(t, id); r.Status != store.RunSucceeded {
		t.Fatalf("run %d %s", id, r.Status)
	}
}
