package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
)

// evilFlow is what a web page would post to run a command as the user.
const evilFlow = `{"files": [{"path": "x.yaml", "content": "name: pwned\nsteps:\n  - name: start\n    run: touch /tmp/baton-pwned\n"}]}`

// raw sends a request with exactly the given headers (no token, no type
// unless listed), as a browser or a script would.
func (h *harness) raw(t *testing.T, method, path, body string, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: b}
}

// TestDriveByRefused replays the drive-by attack on the default loopback
// server: a page on another origin posts a flow and starts it. Every
// variant is refused, nothing is stored, and each refusal is counted.
func TestDriveByRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	tok := "Bearer " + h.s.homeToken
	evil := "http://evil.example"
	cases := []struct {
		name    string
		headers map[string]string
		code    int
		want    string
	}{
		// The reported attack: a form-like text/plain post, no token.
		{"text/plain from another origin", map[string]string{"Content-Type": "text/plain", "Origin": evil}, 403, "Origin"},
		{"no token, same origin", map[string]string{"Content-Type": "application/json"}, 401, "token"},
		{"text/plain with the token", map[string]string{"Content-Type": "text/plain", "Authorization": tok}, 415, "application/json"},
		{"form with the token", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": tok}, 415, "application/json"},
		{"no type with the token", map[string]string{"Authorization": tok}, 415, "application/json"},
		{"JSON from another origin with the token", map[string]string{"Content-Type": "application/json", "Origin": evil, "Authorization": tok}, 403, "Origin"},
		{"null origin", map[string]string{"Content-Type": "application/json", "Origin": "null", "Authorization": tok}, 403, "Origin"},
		{"cross-site fetch", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Authorization": tok}, 403, "cross-site"},
		{"rebinding host", map[string]string{"Content-Type": "application/json", "Host": "rebind.evil.example:8765", "Authorization": tok}, 403, "Host"},
		{"rebinding host, same origin by name", map[string]string{"Content-Type": "application/json", "Host": "rebind.evil.example", "Origin": "http://rebind.evil.example", "Authorization": tok}, 403, "Host"},
		{"a wrong token", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer bt_guess"}, 401, "unknown token"},
	}
	for _, c := range cases {
		r := h.raw(t, "POST", "/api/v1/flows", evilFlow, c.headers)
		if r.code != c.code || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s: %d %s, want %d mentioning %q", c.name, r.code, r.body, c.code, c.want)
		}
	}
	// Starting a run of a flow that exists is refused the same way.
	h.apply(t, "name: victim\nsteps:\n  - {name: start, run: 'true'}\n")
	for _, hd := range []map[string]string{
		{"Content-Type": "text/plain", "Origin": evil},
		{"Content-Type": "text/plain"},
		{"Content-Type": "application/json", "Origin": evil, "Authorization": tok},
		{"Content-Type": "application/json"},
	} {
		if r := h.raw(t, "POST", "/api/v1/flows/victim/runs", `{}`, hd); r.code/100 != 4 {
			t.Errorf("run started with %v: %d %s", hd, r.code, r.body)
		}
	}
	if rs := h.runs(t, "victim"); len(rs) != 0 {
		t.Fatalf("%d runs started from another origin", len(rs))
	}
	fs, err := h.st.Flows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Name == "pwned" {
			t.Fatal("the attacker's flow was stored")
		}
	}
	// The server's own origin with its token works: the defences do not
	// stop the CLI or the UI.
	r := h.raw(t, "POST", "/api/v1/flows", evilFlow, map[string]string{"Content-Type": "application/json; charset=utf-8",
		"Origin": h.url, "Sec-Fetch-Site": "same-origin", "Authorization": tok})
	if r.code != 200 {
		t.Fatalf("same origin with the token: %d %s", r.code, r.body)
	}
	// localhost by name is this machine, not a rebinding domain.
	r = h.raw(t, "GET", "/api/v1/flows", "", map[string]string{"Host": strings.Replace(h.url[len("http://"):], "127.0.0.1", "localhost", 1), "Authorization": tok})
	if r.code != 200 {
		t.Fatalf("Host localhost: %d %s", r.code, r.body)
	}
	m := h.raw(t, "GET", "/metrics", "", nil)
	for _, reason := range []string{"origin", "content_type", "host", "auth"} {
		re := regexp.MustCompile(`baton_http_refused_total\{reason="` + reason + `"\} ([0-9]+)`)
		if sm := re.FindSubmatch(m.body); sm == nil || string(sm[1]) == "0" {
			t.Errorf("refusals for %s not counted", reason)
		}
	}
}

// TestEveryRouteNeedsAToken: on loopback too, no API route answers a
// caller without a token; only health, metrics, the OpenAPI file, the
// login and the index page do.
func TestEveryRouteNeedsAToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	open := map[string]bool{"/healthz": true, "/metrics": true, "/api/v1/openapi.yaml": true, "/login": true}
	fill := strings.NewReplacer("{name}", "x", "{id}", "1", "{path...}", "1/s/a", "{source}", "s", "{key}", "k",
		"{endpoint}", "e", "{version}", "1")
	for _, rt := range h.s.routes() {
		if open[rt.path] {
			if rt.role != "" {
				t.Errorf("%s %s needs a role", rt.method, rt.path)
			}
			continue
		}
		r := h.raw(t, rt.method, fill.Replace(rt.path), "{}", map[string]string{"Content-Type": "application/json"})
		if r.code != 401 {
			t.Errorf("%s %s without a token: %d %s", rt.method, rt.path, r.code, r.body)
		}
	}
}

// TestLoginCookie: a one-time login link signs a browser in with a
// session cookie that is not the home's token, that other sites' (and
// other ports') pages cannot use, and that leaves the secret out of the
// address bar.
func TestLoginCookie(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	u := h.s.LoginURL()
	if !strings.HasPrefix(u, h.url+"/login?token=btl_") {
		t.Fatalf("login URL %q", u)
	}
	noRedirect := &http.Client{Transport: h.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(url string, headers map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A link opened from another site (login CSRF) is refused and stays
	// unused.
	if resp := get(u, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp := get(u, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == h.s.cookieName() {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" ||
		!strings.HasPrefix(cookie.Value, "bts_") || strings.Contains(cookie.Value, h.s.homeToken) || !strings.HasSuffix(cookie.Name, h.url[strings.LastIndex(h.url, ":")+1:]) {
		t.Fatalf("cookie %+v", cookie)
	}
	// The link works once.
	if resp := get(u, nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("a used link: %d %v", resp.StatusCode, resp.Cookies())
	}
	withCookie := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Content-Type": "application/json"}
	if r := h.raw(t, "GET", "/api/v1/runs", "", withCookie); r.code != 200 {
		t.Fatalf("GET with the cookie: %d %s", r.code, r.body)
	}
	if r := h.raw(t, "GET", "/", "", withCookie); r.code != 200 || !strings.Contains(string(r.body), "Signed in as local (admin)") {
		t.Fatalf("index: %d %s", r.code, r.body)
	}
	withCookie["Origin"] = h.url
	withCookie["Sec-Fetch-Site"] = "same-origin"
	if r := h.raw(t, "POST", "/api/v1/signals", `{"name": "labels_ready", "params": {"date": "d"}}`, withCookie); r.code != 201 {
		t.Fatalf("POST from the server's own page: %d %s", r.code, r.body)
	}
	// A page on another port of this host is same-site, not same-origin:
	// it gets the cookie from the browser but may not use it.
	withCookie["Origin"] = "http://127.0.0.1:1"
	if r := h.raw(t, "POST", "/api/v1/signals", `{"name": "labels_ready", "params": {"date": "d"}}`, withCookie); r.code != 403 {
		t.Fatalf("POST with the cookie from another origin: %d %s", r.code, r.body)
	}
	delete(withCookie, "Origin")
	withCookie["Sec-Fetch-Site"] = "same-site"
	if r := h.raw(t, "GET", "/api/v1/runs", "", withCookie); r.code != 403 {
		t.Fatalf("GET with the cookie from another port's page: %d %s", r.code, r.body)
	}
	if resp := get(h.url+"/login?token=bth_wrong", nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// `baton login` asks for a fresh link.
	var link struct {
		URL string `json:"url"`
	}
	r := h.do(t, "POST", "/api/v1/login-links", nil, "")
	r.json(t, &link)
	if r.code != 201 || link.URL == u {
		t.Fatalf("login link: %d %s", r.code, r.body)
	}
	if resp := get(link.URL, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the new link: %d", resp.StatusCode)
	}
	// With --require-auth the home's token signs nothing in.
	h2 := newHarness(t, Options{RequireAuth: true})
	if r := h2.raw(t, "GET", "/api/v1/runs", "", map[string]string{"Authorization": "Bearer " + h2.s.homeToken}); r.code != 401 {
		t.Fatalf("home token under RequireAuth: %d", r.code)
	}
	if h2.s.LoginURL() != "" {
		t.Fatal("a login link under RequireAuth")
	}
}

// TestAuthorizationScheme: only the Bearer scheme, in any case.
func TestAuthorizationScheme(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	for header, code := range map[string]int{
		"Bearer " + h.s.homeToken: 200,
		"bearer " + h.s.homeToken: 200,
		h.s.homeToken:             401,
		"Basic " + h.s.homeToken:  401,
		"Bearer ":                 401,
	} {
		if r := h.raw(t, "GET", "/api/v1/runs", "", map[string]string{"Authorization": header}); r.code != code {
			t.Errorf("Authorization %.20q: %d, want %d", header, r.code, code)
		}
	}
}

// TestActorFromToken: who registers or moves a model is the token's
// holder (checked for both: a registration that took its actor from
// anywhere else passed when only the move was checked); a body that names
// an actor is refused.
func TestActorFromToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	secret, tk, err := token.New("ci-bot", store.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateToken(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	v := modelVersion(t, h, "m", `{"kind":"linear","bias":1,"weights":{"x":0}}`)
	path := fmt.Sprintf("/api/v1/models/m/versions/%d/transitions", v)
	r := h.do(t, "POST", path, map[string]any{"to": "shadow", "reason": "try", "actor": "the-ceo"}, secret)
	if r.code != 400 || !strings.Contains(string(r.body), `"field": "actor"`) {
		t.Fatalf("a body naming the actor: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", path, map[string]any{"to": "shadow", "reason": "try"}, secret); r.code != 200 {
		t.Fatalf("transition: %d %s", r.code, r.body)
	}
	trs, err := h.st.ModelTransitions(context.Background(), "m", v)
	if err != nil {
		t.Fatal(err)
	}
	last := trs[len(trs)-1]
	if last.To != store.ModelShadow || last.Actor != "ci-bot" {
		t.Fatalf("recorded %+v, want shadow by ci-bot", last)
	}
	if r := h.do(t, "POST", fmt.Sprintf("/api/v1/models/m/versions/%d/transitions", v), map[string]any{"to": "canary", "reason": "ok"}, ""); r.code != 200 {
		t.Fatalf("transition with the home's token: %d %s", r.code, r.body)
	}
	trs, _ = h.st.ModelTransitions(context.Background(), "m", v)
	if a := trs[len(trs)-1].Actor; a != HomeActor {
		t.Fatalf("home token recorded as %q", a)
	}

	// Registering: the version's first transition (to registered) is
	// recorded as the token's holder, and a body naming an actor is
	// refused here too.
	h.apply(t, "name: train\nsteps:\n  - name: fit\n    run: |\n      printf '{\"kind\":\"linear\",\"bias\":1,\"weights\":{\"x\":0}}' > \"$BATON_OUTPUT_DIR/model.json\"\n")
	if r := h.do(t, "POST", "/api/v1/flows/train/runs", map[string]any{}, secret); r.code/100 != 2 {
		t.Fatalf("run: %d %s", r.code, r.body)
	}
	run := h.waitRuns(t, "train", 1)[0]
	if run.Status != store.RunSucceeded {
		t.Fatalf("training run %d: %s", run.ID, run.Status)
	}
	artifact := fmt.Sprintf("%d/fit/model.json", run.ID)
	r = h.do(t, "POST", "/api/v1/models/reg/versions", map[string]any{"artifact": artifact, "actor": "the-ceo"}, secret)
	if r.code != 400 || !strings.Contains(string(r.body), `"field": "actor"`) {
		t.Fatalf("a registration naming the actor: %d %s", r.code, r.body)
	}
	r = h.do(t, "POST", "/api/v1/models/reg/versions", map[string]any{"artifact": artifact, "reason": "first fit"}, secret)
	var reg store.ModelVersion
	r.json(t, &reg)
	if r.code != 201 || reg.Version != 1 {
		t.Fatalf("register: %d %s", r.code, r.body)
	}
	trs, err = h.st.ModelTransitions(context.Background(), "reg", reg.Version)
	if err != nil {
		t.Fatal(err)
	}
	if len(trs) != 1 || trs[0].To != store.ModelRegistered || trs[0].Actor != "ci-bot" || trs[0].Reason != "first fit" {
		t.Fatalf("registration recorded as %+v, want registered by ci-bot", trs)
	}
}

// TestViewerGETNeverWrites: asking for a unit's variant logs nothing; the
// POST of the same path logs the exposure and needs an operator. Nor does
// any other GET a viewer sends write anything: every table of the store is
// the same after them (signals, runs, models, experiments, ...), but for
// the token's last use, noted at most once a minute.
func TestViewerGETNeverWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	exp := []experiment.Spec{{Name: "e", Metrics: []string{"m"},
		Variants: []experiment.Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}}}}
	if r := h.do(t, "POST", "/api/v1/experiments", exp, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	viewer, vt, _ := token.New("v", store.RoleViewer)
	if err := h.st.CreateToken(context.Background(), vt); err != nil {
		t.Fatal(err)
	}

	paths := readableStore(t, h, viewer)
	// The token's first use is noted; from then on, within the minute,
	// nothing a viewer GETs is written.
	if r := h.do(t, "GET", "/api/v1/flows", nil, viewer); r.code != 200 {
		t.Fatalf("first use: %d %s", r.code, r.body)
	}
	lastUsed := func() int64 {
		tk, err := h.st.Tokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range tk {
			if k.ID == vt.ID {
				return k.LastUsed.UnixMicro()
			}
		}
		t.Fatalf("token %s gone", vt.ID)
		return 0
	}
	used := lastUsed()
	before := storeDump(t, h, "tokens.last_used")
	getEveryRoute(t, h, viewer, paths)

	for i := range 20 {
		if r := h.do(t, "GET", fmt.Sprintf("/api/v1/experiments/e/assign?unit=u%d", i), nil, viewer); r.code != 200 {
			t.Fatalf("assign: %d %s", r.code, r.body)
		}
	}
	if r := h.do(t, "GET", "/api/v1/experiments/e/assign?unit=u1&expose=true", nil, viewer); r.code != 400 {
		t.Fatalf("GET asking to expose: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/e/assign", map[string]any{"unit": "u1"}, viewer); r.code != 403 {
		t.Fatalf("a viewer's POST: %d %s", r.code, r.body)
	}
	h.s.exps.flush(context.Background())
	if ex, _ := h.st.Exposures(context.Background(), "e", 1); len(ex) != 0 {
		t.Fatalf("GETs logged %d exposures", len(ex))
	}
	if diff := diffDumps(before, storeDump(t, h, "tokens.last_used")); diff != "" {
		t.Fatalf("a viewer's GETs changed the store:\n%s", diff)
	}
	if now := lastUsed(); now != used && time.Since(time.UnixMicro(used)) < time.Minute {
		t.Fatalf("the token's use was noted again within the minute: %d, then %d", used, now)
	}
	var as experiment.Assignment
	r := h.do(t, "POST", "/api/v1/experiments/e/assign", map[string]any{"unit": "u1"}, "")
	r.json(t, &as)
	if r.code != 200 || !as.In {
		t.Fatalf("POST assign: %d %s", r.code, r.body)
	}
	waitUntil(t, 5*time.Second, func() bool {
		ex, _ := h.st.Exposures(context.Background(), "e", 1)
		return len(ex) == 1 && ex[0].Unit == "u1"
	}, "the POST's exposure was not logged")
}

// TestBodiesBounded: every route that takes a body refuses one over its
// limit before reading it, and the one decoder names JSON fields in user
// words.
func TestBodiesBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	fill := strings.NewReplacer("{name}", "x", "{id}", "1", "{source}", "s", "{endpoint}", "e", "{version}", "1")
	// Handlers that look their experiment up before reading find it.
	exp := []experiment.Spec{{Name: "x", Metrics: []string{"m"}, Variants: []experiment.Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}}}}
	if r := h.do(t, "POST", "/api/v1/experiments", exp, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	for _, rt := range h.s.routes() {
		if rt.method == "GET" || rt.method == "DELETE" {
			continue
		}
		limit := rt.limit
		if limit == 0 {
			limit = maxBody
		}
		body := `{"x": "` + strings.Repeat("a", int(limit)) + `"}`
		if r := h.do(t, rt.method, fill.Replace(rt.path), body, ""); r.code != 413 {
			t.Errorf("%s %s with %d bytes: %d %s", rt.method, rt.path, len(body), r.code, truncate(r.body))
		}
		// Chunked: no length to refuse up front, so the read is cut.
		if rt.path == "/api/v1/endpoints/{name}/rollouts" || rt.path == "/api/v1/runs/{id}/cancel" ||
			rt.path == "/api/v1/flows/{name}/unblock" || rt.path == "/api/v1/login-links" {
			continue // these read no body
		}
		req, _ := http.NewRequest(rt.method, h.url+fill.Replace(rt.path), io.MultiReader(strings.NewReader(body)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+h.s.homeToken)
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("%s %s chunked with %d bytes: %d %s", rt.method, rt.path, len(body), resp.StatusCode, truncate(b))
		}
	}
	h.apply(t, "name: f\nparams:\n  n: {type: int, default: 1}\nsteps:\n  - {name: start, run: 'true'}\n")
	cases := []struct {
		path, body, field, want string
	}{
		{"/api/v1/flows/f/runs", `{"params": 5}`, "params", "expected an object, got a JSON number"},
		{"/api/v1/flows/f/runs", `{"params": {"n": "x"}}`, "params.n", "int"},
		{"/api/v1/flows/f/runs", `{"tags": "a"}`, "tags", "expected an array"},
		{"/api/v1/flows/f/runs", `{"parms": {}}`, "parms", "unknown field"},
		{"/api/v1/signals", `{"name": 1}`, "name", "expected a string"},
		{"/api/v1/signals", `{"name": "labels_ready"} {}`, "", "nothing after it"},
		{"/api/v1/signals", ``, "", "send {"},
		{"/api/v1/signals", `{"name": `, "", "ends too soon"},
		{"/api/v1/flows/f/runs", `{"params": {"n": 1, "n": 2}}`, "params.n", "written twice"},
		{"/api/v1/signals", `{"name": "labels_ready", "name": "x"}`, "name", "written twice"},
		{"/api/v1/flows/f/runs", `{}}`, "", "nothing after it"},
		{"/api/v1/endpoints", "- name: e\n  model: m\n", "", "not JSON"},
		{"/api/v1/experiments", "[{name: x}]", "", "not JSON"},
	}
	for _, c := range cases {
		r := h.do(t, "POST", c.path, c.body, "")
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		r.json(t, &e)
		if r.code != 400 || e.Field != c.field || !strings.Contains(e.Error, c.want) || strings.Contains(e.Error, "Go ") {
			t.Errorf("%s %s: %d field %q %q, want field %q mentioning %q", c.path, c.body, r.code, e.Field, e.Error, c.field, c.want)
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// TestHTTPDefaults: a server given no timeouts still has them.
func TestHTTPDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	if hs := h.s.http; hs.ReadTimeout != time.Minute || hs.WriteTimeout != 2*time.Minute || hs.IdleTimeout == 0 || hs.ReadHeaderTimeout == 0 {
		t.Fatalf("timeouts: read %s write %s idle %s header %s", hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.ReadHeaderTimeout)
	}
	resp, err := h.client.Get(h.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("headers %v", resp.Header)
	}
}

// TestSlowClientCut: a client that sends headers and then stalls is cut
// off at the read timeout instead of holding a connection for ever.
func TestSlowClientCut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{ReadTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/signals HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{",
		strings.TrimPrefix(h.url, "http://"), h.s.homeToken)
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer func() {
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cut after %s, want about the 300 ms read timeout", d)
		}
	}()
	// The server answers the timeout (or just closes): read to the end.
	_, err = io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the stalled request was still open after %s", time.Since(start))
	}
}

// TestInvalidUTF8Refused: a body that is not UTF-8 is refused, not
// silently rewritten (two different keys would become one).
func TestInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	applyFeatures(t, h, "entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n  - {name: n, source: plays, aggregate: count, window: 1h}\n")
	for path, body := range map[string]string{
		"/api/v1/signals":               "{\"name\": \"labels_ready\", \"params\": {\"date\": \"d\xff\"}}",
		"/api/v1/features/events/plays": "{\"member_id\": \"m\xfe1\", \"ts\": 1700000000, \"minutes\": 1}\n",
	} {
		if r := h.do(t, "POST", path, body, ""); r.code != 400 || !strings.Contains(string(r.body), "UTF-8") {
			t.Errorf("%s with invalid UTF-8: %d %s", path, r.code, r.body)
		}
	}
	if sigs, _ := h.st.Signals(context.Background(), store.SignalFilter{Name: "labels_ready"}); len(sigs) != 0 {
		t.Fatalf("a signal with invalid UTF-8 was stored")
	}
}

// TestRunPages: GET /api/v1/runs/{id} pages each step's tasks and filters
// them, with the counts of every task.
func TestRunPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, "name: fan\nsteps:\n  - name: start\n    foreach: [0, 1, 2, 3, 4]\n    run: 'test \"$BATON_FOREACH_ITEM\" != 3'\n")
	r := h.do(t, "POST", "/api/v1/flows/fan/runs", map[string]any{}, "")
	var run store.Run
	r.json(t, &run)
	h.waitRuns(t, "fan", 1)
	type page struct {
		Steps []struct {
			Name       string `json:"name"`
			TasksTotal int    `json:"tasks_total"`
			Tasks      []struct {
				Index  int    `json:"index"`
				Status string `json:"status"`
			} `json:"tasks"`
		} `json:"steps"`
	}
	get := func(q string) page {
		t.Helper()
		r := h.do(t, "GET", fmt.Sprintf("/api/v1/runs/%d%s", run.ID, q), nil, "")
		var p page
		r.json(t, &p)
		if r.code != 200 || len(p.Steps) != 1 {
			t.Fatalf("GET run%s: %d %s", q, r.code, r.body)
		}
		return p
	}
	if p := get(""); len(p.Steps[0].Tasks) != 5 {
		t.Fatalf("all tasks: %+v", p)
	}
	if p := get("?limit=2&offset=1"); len(p.Steps[0].Tasks) != 2 || p.Steps[0].Tasks[0].Index != 1 {
		t.Fatalf("page: %+v", p)
	}
	if p := get("?status=failed"); len(p.Steps[0].Tasks) != 1 || p.Steps[0].Tasks[0].Index != 3 {
		t.Fatalf("failed tasks: %+v", p)
	}
	if r := h.do(t, "GET", fmt.Sprintf("/api/v1/runs/%d?status=broken", run.ID), nil, ""); r.code != 400 {
		t.Fatalf("bad status: %d %s", r.code, r.body)
	}
}

// TestDeletedTokenEndsItsSessions: a browser session made from a stored
// token ends when the token is deleted, through the API or (as here) by the
// CLI writing the store; it used to last its 12 hours. A token's use is
// noted at most once a minute, so reads do not write the store each time.
func TestDeletedTokenEndsItsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, Options{})
	secret, tk, _ := token.New("op", store.RoleOperator)
	if err := h.st.CreateToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{Transport: h.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(h.url + "/login?token=" + secret)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == h.s.cookieName() {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no session cookie: %d", resp.StatusCode)
	}
	withCookie := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Content-Type": "application/json"}
	for range 5 {
		if r := h.raw(t, "GET", "/api/v1/runs", "", withCookie); r.code != 200 {
			t.Fatalf("with the session: %d %s", r.code, r.body)
		}
	}
	ts, _ := h.st.Tokens(ctx)
	used := ts[0].LastUsed
	for range 5 {
		h.do(t, "GET", "/api/v1/runs", nil, secret)
	}
	if ts, _ := h.st.Tokens(ctx); len(ts) != 1 || used.IsZero() || !ts[0].LastUsed.Equal(used) {
		t.Fatalf("last_used: first %v, then %+v", used, ts)
	}
	if err := h.st.DeleteToken(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	if r := h.raw(t, "GET", "/api/v1/runs", "", withCookie); r.code != 401 || !strings.Contains(string(r.body), "deleted") {
		t.Fatalf("after the token was deleted: %d %s", r.code, r.body)
	}
	if r := h.raw(t, "POST", "/api/v1/signals", `{"name": "x"}`, withCookie); r.code != 401 {
		t.Fatalf("a change after the token was deleted: %d %s", r.code, r.body)
	}
}
