package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/store"
)

// fuzzRoutes are the routes whose bodies the fuzzer sends, with a valid
// body each as a seed. Applying flows is left out (its parser has a fuzzer
// of its own, internal/flow), so that nothing the fuzzer writes can run.
type fuzzRoute struct{ method, path, seed, shape string }

var fuzzRoutes = []fuzzRoute{
	{"POST", "/api/v1/flows/f/runs", `{"params": {"n": 1}, "tags": ["a"]}`, shapeOptionalObject},
	{"POST", "/api/v1/runs/1/resume", `{"from": "start"}`, shapeOptionalObject},
	{"POST", "/api/v1/runs/1/cancel", ``, shapeNone},
	{"POST", "/api/v1/signals", `{"name": "labels_ready", "id": "x", "params": {"date": "d", "labels": 3}}`, shapeObject},
	{"POST", "/api/v1/features/events/plays", `[{"member_id": "m1", "ts": 1700000000, "minutes": 3}]`, shapeEvents},
	{"POST", "/api/v1/features/events/plays", "{\"member_id\": \"m1\", \"ts\": \"2026-01-01T00:00:00Z\"}\n{}\n", shapeEvents},
	{"POST", "/api/v1/predict/e", `{"key": "m1", "unit": "u", "features": {"x": 1}}`, shapeObject},
	{"POST", "/api/v1/endpoints", `[{"name": "e", "model": "m", "timeout": "50ms", "fallback": {"static": 0}}]`, shapeArray},
	{"POST", "/api/v1/endpoints/e/rollouts", ``, shapeNone},
	{"POST", "/api/v1/endpoints/e/rollouts/abort", `{"reason": "r"}`, shapeObject},
	{"POST", "/api/v1/models/m/versions", `{"artifact": "1/fit/model.json", "metrics": {"auc": 0.7}, "tags": {"a": "b"}}`, shapeObject},
	{"POST", "/api/v1/models/m/versions/1/transitions", `{"to": "shadow", "reason": "r", "decision": {"expected_lifetime": "1y"}}`, shapeObject},
	{"POST", "/api/v1/experiments", `[{"name": "x", "metrics": ["m"], "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]}]`, shapeArray},
	{"POST", "/api/v1/experiments/x/assign", `{"unit": "u", "attributes": {"market": "US"}}`, shapeObject},
	{"POST", "/api/v1/experiments/x/exposures", `[{"unit": "u", "variant": "a", "at": "2026-01-01T00:00:00Z"}]`, shapeArray},
	{"POST", "/api/v1/experiments/x/metrics", `[{"unit": "u", "metric": "m", "value": 1.5}]`, shapeArray},
	{"POST", "/api/v1/monitors", `[{"name": "q", "kind": "online_quality", "numerator": {"source": "plays", "field": "minutes"}, "denominator": {"source": "plays"}, "min": 0.5, "every": "1h"}]`, shapeArray},
	{"POST", "/api/v1/monitors/q/evaluate", ``, shapeOptionalObject},
	{"POST", "/api/v1/tokens", `{"name": "n", "role": "viewer"}`, shapeObject},
}

// fuzzRegressions are bodies a route once answered with a 2xx though they
// are not of its shape: seeds, so that every run sends them.
var fuzzRegressions = []struct{ path, body string }{
	{"/api/v1/experiments/x/exposures", `[{"unit": "u", "variant": "a"}]]`},
	{"/api/v1/experiments/x/metrics", `[{"unit": "u", "metric": "m", "value": 1.5}]}`},
}

// The shapes of the routes' bodies, as far as a 2xx answer vouches for
// them: the top-level kind of valid JSON. (What the fields must be is the
// handlers' to say; their own tests check it.)
const (
	shapeNone           = "none"    // no body is read: anything goes
	shapeObject         = "object"  // a JSON object
	shapeOptionalObject = "object?" // nothing, or a JSON object
	shapeArray          = "array"   // a JSON array
	// A JSON array of events, or JSON lines: lines are judged one by one,
	// a bad one rejected in the 200's counts (and dead-lettered).
	shapeEvents = "events"
)

// shaped says whether body can be of shape: a 2xx for one that cannot is a
// body taken for what it is not.
func shaped(shape string, body []byte) bool {
	b := bytes.TrimSpace(body)
	switch shape {
	case shapeNone:
		return true
	case shapeOptionalObject:
		return len(b) == 0 || b[0] == '{' && json.Valid(b)
	case shapeObject:
		return len(b) > 0 && b[0] == '{' && json.Valid(b)
	case shapeArray:
		return len(b) > 0 && b[0] == '[' && json.Valid(b)
	case shapeEvents:
		return len(b) > 0 && (b[0] == '{' || b[0] == '[' && json.Valid(b))
	}
	panic("unknown shape " + shape)
}

// FuzzHTTPBodies sends arbitrary bodies to every route that decodes one:
// whatever comes, the answer is a status below 500 with a JSON error, never
// a panic or an internal error; and a 2xx only for a body of the route's
// shape (valid JSON of the right kind).
func FuzzHTTPBodies(f *testing.F) {
	h := newHarness(f, Options{})
	h.apply(f, "name: f\nparams:\n  n: {type: int, default: 1}\nsteps:\n  - {name: start, run: 'true'}\n")
	applyFeaturesTB(f, h, "entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n  - {name: n, source: plays, aggregate: count, window: 1h}\n")
	// Model m (version 1, in production), endpoint e, experiment x and
	// monitor q exist, so their routes get past the look-up to the body.
	modelVersion(f, h, "m", `{"kind":"logistic","bias":1,"weights":{"x":0}}`, store.ModelCanary, store.ModelProduction)
	for _, path := range []string{"/api/v1/endpoints", "/api/v1/experiments", "/api/v1/monitors"} {
		seed := fuzzRoutes[slices.IndexFunc(fuzzRoutes, func(rt fuzzRoute) bool { return rt.path == path })].seed
		if r := h.do(f, "POST", path, seed, ""); r.code != 200 {
			f.Fatalf("%s: %d %s", path, r.code, r.body)
		}
	}
	for i, rt := range fuzzRoutes {
		f.Add(uint8(i), []byte(rt.seed))
	}
	for _, rg := range fuzzRegressions {
		i := slices.IndexFunc(fuzzRoutes, func(rt fuzzRoute) bool { return rt.path == rg.path })
		f.Add(uint8(i), []byte(rg.body))
	}
	handler := h.s.Handler()
	auth := "Bearer " + h.s.homeToken
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		// The server's own address: httptest's default host, example.com,
		// is refused by the guard (403) before any handler reads the body.
		req := httptest.NewRequest(rt.method, "http://"+h.s.Addr()+rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
		if w.Code == 401 || w.Code == 403 {
			// The home's token may do everything: the guard refused the
			// request itself, and the body was never read.
			t.Fatalf("%s %s: %d %s", rt.method, rt.path, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: error answered as %q", rt.method, rt.path, w.Header().Get("Content-Type"))
		}
		if w.Code/100 == 2 && !shaped(rt.shape, body) {
			t.Fatalf("%s %s %q is not %s JSON, yet: %d %s", rt.method, rt.path, body, rt.shape, w.Code, w.Body)
		}
	})
}
