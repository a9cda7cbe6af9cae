package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/testwait"
)

type serverProc struct {
	cmd  *exec.Cmd
	addr string
	log  *lockedWriter
	done chan error
}

// startServer runs `baton server` on a free loopback port.
func startServer(t *testing.T, home string, args ...string) *serverProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"server", "--addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), "BATON_HOME="+home)
	logs := &lockedWriter{w: &strings.Builder{}}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, addr: addr, log: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	testwait.UntilEvery(failFirst{t, func() { cmd.Process.Kill() }}, 20*time.Second, 20*time.Millisecond, func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, logs.String())
		}
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprintf("%s\n%s", resp.Status, logs.String())
	}, "the server to answer /healthz")
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serverProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("server exit: %v\n%s", err, p.log.String())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("server did not stop on SIGTERM\n%s", p.log.String())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

type runJSON struct {
	ID            int64                      `json:"id"`
	Flow          string                     `json:"flow"`
	Status        string                     `json:"status"`
	Trigger       string                     `json:"trigger"`
	TriggerDetail string                     `json:"trigger_detail"`
	Error         string                     `json:"error"`
	Params        map[string]json.RawMessage `json:"params"`
}

func runsOf(t *testing.T, home, flow string) []runJSON {
	t.Helper()
	r := must(t, baton(t, home, "runs", "--flow", flow, "-o", "json"), 0)
	var rs []runJSON
	if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil {
		t.Fatalf("runs: %v\n%s", err, r.stdout)
	}
	return rs
}

func waitRuns(t *testing.T, home, flow string, n int, d time.Duration) []runJSON {
	t.Helper()
	var rs []runJSON
	// Each check runs `baton runs`: every 50 ms is often enough.
	testwait.UntilEvery(t, d, 50*time.Millisecond, func() (bool, string) {
		rs = runsOf(t, home, flow)
		done := 0
		for _, r := range rs {
			if r.Status == "succeeded" || r.Status == "failed" || r.Status == "cancelled" {
				done++
			}
		}
		return done >= n, fmt.Sprintf("%d ended: %+v", done, rs)
	}, "%d runs of flow %s to end", n, flow)
	return rs
}

const e2eSignals = `signals:
  - name: features_ready
    params:
      date: {type: string, required: true}
      row_count: {type: int, required: true}
      region: {type: string}
  - name: labels_ready
    params:
      date: {type: string, required: true}
  - name: model_trained
    params:
      model: {type: string, required: true}
`

func TestServerSignalsEndToEnd(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	files := []string{
		writeFile(t, dir, "signals.yaml", e2eSignals),
		writeFile(t, dir, "us.yaml", `name: us-model
params:
  date: {default: none}
triggers:
  - signal: features_ready
    when: 'params.region == "US" && params.row_count > 100'
steps:
  - name: train
    publish: [model_trained]
    run: |
      printf '{"model": "us-%s"}' "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/model_trained.json"
`),
		writeFile(t, dir, "eu.yaml", `name: eu-model
triggers:
  - signal: features_ready
    when: 'params.region == "EU"'
steps:
  - name: train
    run: 'true'
`),
		writeFile(t, dir, "audit.yaml", `name: audit
triggers:
  - on_finish: {flow: us-model}
steps:
  - name: check
    run: 'true'
`),
		writeFile(t, dir, "joined.yaml", `name: joined
params:
  date: {default: none}
triggers:
  - signals: [features_ready, labels_ready]
    join_keys: [date]
steps:
  - name: a
    run: printf '%s' "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/date"
`),
		writeFile(t, dir, "waiter.yaml", `name: waiter
steps:
  - name: prep
    run: 'true'
  - name: deploy
    needs: [prep]
    wait: {signal: model_trained, timeout: 60s}
    run: printf '%s' "$BATON_SIGNAL_PARAMS" > "$BATON_OUTPUT_DIR/got"
`),
	}
	must(t, baton(t, home, append([]string{"flow", "apply"}, files...)...), 0)
	startServer(t, home)

	// A foreground run waits for a signal that a triggered run publishes.
	waiter := exec.Command(bin, "run", filepath.Join(dir, "waiter.yaml"))
	waiter.Env = append(os.Environ(), "BATON_HOME="+home)
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	// A wait sees signals published after its run began: publish only once
	// the run exists, or a busy machine lets the signal win the race.
	testwait.UntilEvery(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return len(runsOf(t, home, "waiter")) > 0, ""
	}, "the waiting run to start")

	pub := func(args ...string) result {
		return baton(t, home, append([]string{"signal", "publish", "features_ready"}, args...)...)
	}
	must(t, pub("--param", "date=2026-11-28", "--param", "row_count=500", "--param", "region=US", "--id", "f1"), 0)
	if r := must(t, pub("--param", "date=2026-11-28", "--param", "row_count=500", "--param", "region=US", "--id", "f1"), 0); !strings.Contains(r.stdout, "already published") {
		t.Fatalf("second publish of f1: %s", r.stdout)
	}
	must(t, pub("--param", "date=2026-11-29", "--param", "row_count=5", "--param", "region=US"), 0)
	if r := must(t, pub("--param", "date=x", "--param", "row_count=lots"), 2); !strings.Contains(r.stderr, "row_count") {
		t.Fatalf("bad param: %s", r.stderr)
	}
	if r := must(t, baton(t, home, "signal", "publish", "no_such_signal"), 2); !strings.Contains(r.stderr, "no contract") {
		t.Fatalf("unknown signal: %s", r.stderr)
	}

	us := waitRuns(t, home, "us-model", 1, 30*time.Second)
	if len(us) != 1 || us[0].Status != "succeeded" || us[0].Trigger != "signal" || string(us[0].Params["date"]) != `"2026-11-28"` {
		t.Fatalf("us-model runs (one signal met the condition): %+v", us)
	}
	if audit := waitRuns(t, home, "audit", 1, 30*time.Second); audit[0].Trigger != "on_finish" {
		t.Fatalf("audit: %+v", audit)
	}
	if err := waiter.Wait(); err != nil {
		t.Fatalf("the waiting run: %v", err)
	}
	wr := runsOf(t, home, "waiter")
	got := must(t, baton(t, home, "artifact", "get", fmt.Sprintf("%d/deploy/got", wr[0].ID)), 0).stdout
	if !strings.Contains(got, `"model":"us-2026-11-28"`) {
		t.Fatalf("the waiting step saw %q", got)
	}
	if rs := runsOf(t, home, "eu-model"); len(rs) != 0 {
		t.Fatalf("eu-model ran for US signals: %+v", rs)
	}
	must(t, baton(t, home, "signal", "publish", "labels_ready", "--param", "date=2026-11-28"), 0)
	if j := waitRuns(t, home, "joined", 1, 30*time.Second); string(j[0].Params["date"]) != `"2026-11-28"` || j[0].Trigger != "join" {
		t.Fatalf("join: %+v", j)
	}

	// Lineage, in the contract's JSON.
	var sl struct {
		Publishers  []string `json:"publishers"`
		Subscribers []string `json:"subscribers"`
		Recent      []struct {
			ID            string          `json:"id"`
			Params        json.RawMessage `json:"params"`
			TriggeredRuns []int64         `json:"triggered_runs"`
		} `json:"recent"`
	}
	json.Unmarshal([]byte(must(t, baton(t, home, "lineage", "signal", "features_ready", "-o", "json"), 0).stdout), &sl)
	if strings.Join(sl.Subscribers, ",") != "eu-model,joined,us-model" || len(sl.Recent) != 2 {
		t.Fatalf("lineage signal: %+v", sl)
	}
	var fl struct {
		Flows []struct {
			Flow string   `json:"flow"`
			Path []string `json:"path"`
		} `json:"flows"`
	}
	json.Unmarshal([]byte(must(t, baton(t, home, "lineage", "flow", "us-model", "--downstream", "-o", "json"), 0).stdout), &fl)
	reached := map[string]string{}
	for _, f := range fl.Flows {
		reached[f.Flow] = strings.Join(f.Path, " ")
	}
	if reached["audit"] != "us-model on_finish audit" || reached["waiter"] != "us-model signal:model_trained waiter" {
		t.Fatalf("downstream of us-model: %v", reached)
	}
	ol := must(t, baton(t, home, "lineage", "run", fmt.Sprint(us[0].ID), "--openlineage"), 0).stdout
	if !strings.Contains(ol, `"eventType": "COMPLETE"`) || !strings.Contains(ol, `"signal/model_trained"`) {
		t.Fatalf("openlineage: %s", ol)
	}
}

func TestServerCronAndCatchup(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "tick.yaml", `name: tick
triggers:
  - cron: "@every 1s"
    catchup: last
steps:
  - name: a
    run: 'true'
`)), 0)
	srv := startServer(t, home)
	waitRuns(t, home, "tick", 2, 20*time.Second)
	srv.stop(t)
	stopped := time.Now()
	before := len(runsOf(t, home, "tick"))
	// The downtime is the scenario, not a wait for something: the real
	// clock must pass about seven ticks while no server runs (the server
	// is another process, so no fake clock reaches it).
	time.Sleep(7 * time.Second)
	startServer(t, home)
	ready := time.Now()
	rs := waitRuns(t, home, "tick", before+1, 20*time.Second)
	// With catchup: last, of the ticks missed while down only the latest
	// fires: none from the first five seconds of the downtime, and one
	// from its end (up to the moment the server answered; on a loaded
	// machine regular ticks of the starting server fall there too, so
	// that count has no upper bound; catchup: all would show as early
	// runs). No tick fires twice.
	early, late := 0, 0
	seen := map[string]bool{}
	for _, r := range runsOf(t, home, "tick") {
		if seen[r.TriggerDetail] {
			t.Fatalf("tick %s fired twice", r.TriggerDetail)
		}
		seen[r.TriggerDetail] = true
	}
	for _, r := range rs[:len(rs)-before] {
		tk, err := time.Parse(time.RFC3339, r.TriggerDetail)
		if err != nil {
			t.Fatalf("cron run detail %q", r.TriggerDetail)
		}
		switch {
		case tk.Before(stopped.Add(5 * time.Second)):
			early++
		case !tk.After(ready):
			late++
		}
	}
	if early != 0 || late < 1 {
		t.Fatalf("after seven missed ticks: %d early, %d late catch-up runs; want 0 and at least 1", early, late)
	}
}

func TestServerTokens(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "signals.yaml", e2eSignals)), 0)
	srv := startServer(t, home, "--require-auth")
	resp, err := http.Post("http://"+srv.addr+"/api/v1/signals", "application/json", strings.NewReader(`{"name": "labels_ready", "params": {"date": "d"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "token") {
		t.Fatalf("no token: %d %s", resp.StatusCode, b)
	}
	var tok struct {
		Secret string `json:"secret"`
	}
	json.Unmarshal([]byte(must(t, baton(t, home, "token", "create", "--name", "ci", "--role", "operator", "-o", "json"), 0).stdout), &tok)
	req, _ := http.NewRequest("POST", "http://"+srv.addr+"/api/v1/signals", strings.NewReader(`{"name": "labels_ready", "params": {"date": "d"}}`))
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("operator token: %d", resp.StatusCode)
	}
	if r := must(t, baton(t, home, "token", "create", "--name", "x", "--role", "god"), 2); !strings.Contains(r.stderr, "viewer, operator or admin") {
		t.Fatalf("bad role: %s", r.stderr)
	}
}

func TestBackfill(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "daily.yaml", `name: daily
params:
  date: {type: string}
steps:
  - name: a
    run: printf '%s' "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/d"
`)), 0)
	must(t, baton(t, home, "backfill", "daily", "--from", "2026-01-30", "--to", "2026-02-02", "--local"), 0)
	rs := runsOf(t, home, "daily")
	if len(rs) != 4 || string(rs[0].Params["date"]) != `"2026-02-02"` || rs[3].Trigger != "backfill" {
		t.Fatalf("backfill runs: %+v", rs)
	}
	must(t, baton(t, home, "backfill", "daily", "--from", "2026-02-02", "--to", "2026-01-01"), 2)
	must(t, baton(t, home, "backfill", "daily", "--from", "2026-01-01", "--to", "2026-01-02", "--param-name", "day"), 2)
	// Without --local the server runs them.
	must(t, baton(t, home, "backfill", "daily", "--from", "2026-03-01", "--to", "2026-03-03"), 0)
	startServer(t, home)
	waitRuns(t, home, "daily", 7, 30*time.Second)
}

// TestServerDriveBy: the default server on loopback refuses a web page's
// requests (the drive-by that ran a command as the user), while the CLI
// on the same home reaches it with no set-up, and a browser signs in at
// the URL the server prints.
func TestServerDriveBy(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "signals.yaml", e2eSignals)), 0)
	srv := startServer(t, home)
	flow := `{"files": [{"path": "x.yaml", "content": "name: pwned\nsteps:\n  - name: start\n    run: touch /tmp/pwned\n"}]}`
	tok := homeToken(t, home)
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "victim.yaml", "name: victim\nsteps:\n  - {name: start, run: 'touch "+filepath.Join(dir, "ran")+"'}\n")), 0)
	for _, c := range []struct {
		path, typ, origin, token string
		code                     int
	}{
		{"/api/v1/flows", "text/plain", "http://evil.example", "", 403},        // the reported attack
		{"/api/v1/flows", "application/json", "http://evil.example", tok, 403}, // even with the token
		{"/api/v1/flows", "text/plain", "", tok, 415},                          // a form's type, no origin
		{"/api/v1/flows", "application/json", "", "", 401},                     // no token
		{"/api/v1/flows/victim/runs", "text/plain", "http://evil.example", "", 403},
		{"/api/v1/flows/victim/runs", "text/plain", "", tok, 415},
		{"/api/v1/flows/victim/runs", "application/json", "", "", 401},
	} {
		body := flow
		if strings.HasSuffix(c.path, "/runs") {
			body = "{}"
		}
		req, _ := http.NewRequest("POST", "http://"+srv.addr+c.path, strings.NewReader(body))
		req.Header.Set("Content-Type", c.typ)
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("POST %s as %s from %q with token %v: %d, want %d", c.path, c.typ, c.origin, c.token != "", resp.StatusCode, c.code)
		}
	}
	if r := must(t, baton(t, home, "runs", "--flow", "victim", "-o", "json"), 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a run of victim was started: %s", r.stdout)
	}
	if r := must(t, baton(t, home, "flow", "list", "-o", "json"), 0); strings.Contains(r.stdout, "pwned") {
		t.Fatalf("the page's flow was stored: %s", r.stdout)
	}
	// The CLI publishes through the server with the home's token.
	must(t, baton(t, home, "signal", "publish", "labels_ready", "-p", "date=d"), 0)
	resp, err := http.Get("http://" + srv.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `baton_signals_published_total{signal="labels_ready"} 1`) {
		t.Fatalf("the CLI's signal did not go through the server's API")
	}
	if !strings.Contains(srv.log.String(), "http://"+srv.addr+"/login?token=btl_") {
		t.Fatalf("no login link printed:\n%s", srv.log.String())
	}
	if r := must(t, baton(t, home, "login"), 0); !strings.HasPrefix(r.stdout, "http://"+srv.addr+"/login?token=btl_") {
		t.Fatalf("baton login: %s", r.stdout)
	}
}

// homeToken reads the API token the server made in the home, as the CLI does.
func homeToken(t *testing.T, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
