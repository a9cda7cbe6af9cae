package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzRoutes are the routes whose bodies the fuzzer sends, with a valid
// body each as a seed. Applying flows is left out (its parser has a fuzzer
// of its own, internal/flow), so that nothing the fuzzer writes can run.
var fuzzRoutes = []struct{ method, path, seed string }{
	{"POST", "/api/v1/flows/f/runs", `{"params": {"n": 1}, "tags": ["a"]}`},
	{"POST", "/api/v1/runs/1/resume", `{"from": "start"}`},
	{"POST", "/api/v1/runs/1/cancel", ``},
	{"POST", "/api/v1/signals", `{"name": "labels_ready", "id": "x", "params": {"date": "d", "labels": 3}}`},
	{"POST", "/api/v1/features/events/plays", `[{"member_id": "m1", "ts": 1700000000, "minutes": 3}]`},
	{"POST", "/api/v1/features/events/plays", "{\"member_id\": \"m1\", \"ts\": \"2026-01-01T00:00:00Z\"}\n{}\n"},
	{"POST", "/api/v1/predict/e", `{"key": "m1", "unit": "u", "features": {"x": 1}}`},
	{"POST", "/api/v1/endpoints", `[{"name": "e", "model": "m", "timeout": "50ms", "fallback": {"static": 0}}]`},
	{"POST", "/api/v1/endpoints/e/rollouts", ``},
	{"POST", "/api/v1/models/m/versions", `{"artifact": "1/fit/model.json", "metrics": {"auc": 0.7}, "tags": {"a": "b"}}`},
	{"POST", "/api/v1/models/m/versions/1/transitions", `{"to": "shadow", "reason": "r", "decision": {"expected_lifetime": "1y"}}`},
	{"POST", "/api/v1/experiments", `[{"name": "x", "metrics": ["m"], "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]}]`},
	{"POST", "/api/v1/experiments/x/assign", `{"unit": "u", "attributes": {"market": "US"}}`},
	{"POST", "/api/v1/experiments/x/exposures", `[{"unit": "u", "variant": "a", "at": "2026-01-01T00:00:00Z"}]`},
	{"POST", "/api/v1/experiments/x/metrics", `[{"unit": "u", "metric": "m", "value": 1.5}]`},
	{"POST", "/api/v1/tokens", `{"name": "n", "role": "viewer"}`},
}

// FuzzHTTPBodies sends arbitrary bodies to every route that decodes one:
// whatever comes, the answer is a status below 500 with a JSON error, never
// a panic or an internal error.
func FuzzHTTPBodies(f *testing.F) {
	h := newHarness(f, Options{})
	h.apply(f, "name: f\nparams:\n  n: {type: int, default: 1}\nsteps:\n  - {name: start, run: 'true'}\n")
	applyFeaturesTB(f, h, "entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n  - {name: n, source: plays, aggregate: count, window: 1h}\n")
	for i, rt := range fuzzRoutes {
		f.Add(uint8(i), []byte(rt.seed))
	}
	handler := h.s.Handler()
	auth := "Bearer " + h.s.homeToken
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: error answered as %q", rt.method, rt.path, w.Header().Get("Content-Type"))
		}
	})
}
