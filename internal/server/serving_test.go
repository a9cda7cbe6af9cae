package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// modelVersion stores spec as a blob and registers it as a version of
// model, moved through states.
func modelVersion(t testing.TB, h *harness, model string, spec string, states ...store.ModelState) int {
	t.Helper()
	ctx := context.Background()
	d, n, err := h.blobs.PutBytes(ctx, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/fit/model.json", Digest: d, Size: n, RunID: 1}, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if _, err := registry.New(h.st).Transition(ctx, model, v.Version, s, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	return v.Version
}

// servingSetup applies features (10 of them over one source), loads events
// for keys m0..m999, and an endpoint "churn" served by a built-in logistic
// model over those features.
func servingSetup(t testing.TB, h *harness, modelSpec string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	var defs strings.Builder
	defs.WriteString("entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n")
	var names []string
	for i, agg := range []string{"count", "sum", "avg", "min", "max", "count", "sum", "avg", "min", "max"} {
		field := ", field: minutes"
		if agg == "count" {
			field = ""
		}
		fmt.Fprintf(&defs, "  - {name: f%d, source: plays, aggregate: %s%s, window: %s}\n", i, agg, field, []string{"1h", "24h"}[i/5])
		names = append(names, fmt.Sprintf("f%d", i))
	}
	applyFeaturesTB(t, h, defs.String())
	now := time.Now()
	var lines strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&lines, `{"member_id":"m%d","ts":%d,"minutes":%d}`+"\n", i%1000, now.Add(-time.Duration(i)*time.Second).Unix(), i%90)
	}
	if _, err := h.s.features.Ingest(ctx, "plays", strings.NewReader(lines.String())); err != nil {
		t.Fatal(err)
	}
	modelVersion(t, h, "churn", modelSpec, store.ModelCanary, store.ModelProduction)
	modelVersion(t, h, "popular", `{"kind":"ranking","items":["t1","t2","t3"]}`, store.ModelCanary, store.ModelProduction)
	eps := []serve.Endpoint{{Name: "churn", Model: "churn", Features: names, Timeout: serve.Duration(timeout),
		MinConfidence: 0.55, Fallback: serve.Fallback{Model: "popular", Static: []string{"t0"}}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("apply endpoints: %d %s", r.code, r.body)
	}
}

func applyFeaturesTB(t testing.TB, h *harness, defs string) {
	t.Helper()
	tt, ok := t.(*testing.T)
	if ok {
		applyFeatures(tt, h, defs)
		return
	}
	d, err := featureParse(defs)
	if err != nil {
		t.Fatal(err)
	}
	if err := featureApply(h, d); err != nil {
		t.Fatal(err)
	}
	wake(h.s.wakeReload)
	waitUntil(t, 5*time.Second, func() bool { return h.s.features.Catalog().Sources["plays"] != nil }, "no reload")
}

const logisticSpec = `{"kind":"logistic","bias":-1,"weights":{"f0":0.01,"f1":0.001,"f2":0.01,"f5":-0.001}}`

func TestServingOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	// A timeout far above a stall of a busy test machine: the broken
	// model below must fail by its error, not by the clock.
	servingSetup(t, h, logisticSpec, 5*time.Second)
	var resp serve.Response
	r := h.do(t, "POST", "/api/v1/predict/churn", map[string]any{"key": "m7"}, "")
	r.json(t, &resp)
	if r.code != 200 || resp.Path != serve.PathModel || resp.Version != 1 || resp.Model != "churn" {
		t.Fatalf("predict: %d %s", r.code, r.body)
	}
	// Malformed requests get 400; an unknown endpoint 404.
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/api/v1/predict/churn", `{"key": 7}`, 400},
		{"/api/v1/predict/churn", `{"kee": "m1"}`, 400},
		{"/api/v1/predict/churn", `{}`, 400},
		{"/api/v1/predict/churn", `not json`, 400},
		{"/api/v1/predict/nope", `{"key": "m1"}`, 404},
	} {
		if r := h.do(t, "POST", c.path, c.body, ""); r.code != c.code {
			t.Errorf("%s %s: %d %s", c.path, c.body, r.code, r.body)
		}
	}
	// The model registry over the API: an illegal transition is a 400.
	r = h.do(t, "POST", "/api/v1/models/churn/versions/1/transitions", map[string]any{"to": "shadow", "reason": "x"}, "")
	if r.code != 400 || !strings.Contains(string(r.body), "illegal transition") {
		t.Fatalf("illegal: %d %s", r.code, r.body)
	}
	r = h.do(t, "GET", "/api/v1/models/churn/versions/production", nil, "")
	if r.code != 200 || !strings.Contains(string(r.body), `"to": "production"`) {
		t.Fatalf("version: %d %s", r.code, r.body)
	}
	// A broken model version: the endpoint falls back, never a 5xx.
	modelVersion(t, h, "churn", `{"kind":"http","url":"http://127.0.0.1:1/"}`, store.ModelCanary)
	r = h.do(t, "POST", "/api/v1/models/churn/versions/2/transitions", map[string]any{"to": "production", "reason": "break it",
		"decision": map[string]string{"expected_lifetime": "1d"}}, "")
	if r.code != 200 {
		t.Fatalf("promote: %d %s", r.code, r.body)
	}
	r = h.do(t, "POST", "/api/v1/predict/churn", map[string]any{"key": "m7"}, "")
	r.json(t, &resp)
	if r.code != 200 || resp.Path != serve.PathFallback || resp.Reason != serve.ReasonError || resp.Model != "popular" {
		t.Fatalf("broken model: %d %s", r.code, r.body)
	}
	if r := h.do(t, "GET", "/metrics", nil, ""); !strings.Contains(string(r.body), `baton_predictions_total{endpoint="churn",path="fallback",reason="error"} 1`) {
		t.Fatalf("metrics lack the fallback")
	}
	// Rollouts over the API: no canary version to roll out now.
	if r := h.do(t, "POST", "/api/v1/endpoints/churn/rollouts", nil, ""); r.code != 400 || !strings.Contains(string(r.body), "no version in state canary") {
		t.Fatalf("rollout without canary: %d %s", r.code, r.body)
	}
}

// openLoop sends requests at rate for d, each on its schedule, and returns
// the latencies and the responses' paths.
func openLoop(b *testing.B, h *harness, path string, rate int, d time.Duration, body func(i int) string) ([]time.Duration, map[string]int, int64) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	// Idle connections hold buffers: close them so heap figures taken
	// after a run are the server's.
	defer client.CloseIdleConnections()
	auth := "Bearer " + h.s.homeToken
	total := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, total)
	// Paths as small codes: the harness must not allocate per request, or
	// its own bookkeeping would read as the server's memory growing.
	paths := make([]uint8, total)
	var failed atomic.Int64
	var wg sync.WaitGroup
	cpu0, wait0 := processCPU(b), runqueueWait()
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		// The sleep is the load's schedule, not a wait for something: an
		// open-loop client sends request i at its time whether or not the
		// earlier ones have answered.
		time.Sleep(time.Until(at))
		wg.Go(func() {
			req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body(i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			// Only the path and the reason: decoding the whole answer
			// into maps (a page's rows and items) cost the client about
			// as much CPU as the server spent on the page, on the cores
			// the server runs on.
			var r struct {
				Path   string `json:"path"`
				Reason string `json:"reason"`
			}
			err = json.NewDecoder(resp.Body).Decode(&r)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			lat[i] = time.Since(at)
			paths[i] = pathCode(r.Path, r.Reason)
		})
	}
	wg.Wait()
	// The process's CPU for each request (server, client and the server's
	// own loops): unlike the latencies, it does not grow when other
	// programs take the cores, so it compares versions on a busy machine.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(total), "cpu-ms/req")
	// How long the process's threads were ready to run but waited for a
	// core, per second: the share of a latency no code of ours spends.
	if wait1 := runqueueWait(); wait0 >= 0 && wait1 >= 0 {
		b.ReportMetric(float64((wait1-wait0).Microseconds())/1000/time.Since(start).Seconds(), "runq-wait-ms/s")
	}
	counts := map[string]int{}
	for _, p := range paths {
		counts[pathNames[p]]++
	}
	return lat, counts, failed.Load()
}

// reportLatency reports the client's p50 and p99 and, beside them, the
// server's own: the time Predict took, from the samples its collector kept
// of the endpoint's production version since from (the client's view adds
// HTTP, JSON, the client and waits for a core, which on this 2-core
// machine the client and the server share).
func reportLatency(b *testing.B, h *harness, endpoint string, from time.Time, lat []time.Duration) {
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	var version int
	for _, st := range h.s.serving.Statuses() {
		if st.Endpoint == endpoint {
			version = st.Production
		}
	}
	ms := h.s.serving.Collector.Metrics(endpoint, version, from, time.Now())["latency_ms"]
	if len(ms) == 0 {
		b.Fatalf("no samples of endpoint %s version %d", endpoint, version)
	}
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], "server-p50-ms")
	b.ReportMetric(ms[int(float64(len(ms)-1)*0.99)], "server-p99-ms")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runqueueWait is the time the process's threads have waited for a core
// (Linux's /proc/self/task/*/schedstat, its second field), or -1 where
// that is not known.
func runqueueWait() time.Duration {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // a thread that ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return -1
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return -1
		}
		sum += time.Duration(ns)
	}
	return sum
}

var pathNames = []string{"?", "model/model", "fallback/low_confidence", "fallback/error", "fallback/timeout", "fallback/no_model"}

func pathCode(path, reason string) uint8 {
	for i, n := range pathNames {
		if len(n) == len(path)+1+len(reason) && n[:len(path)] == path && n[len(path)+1:] == reason {
			return uint8(i)
		}
	}
	return 0
}

// BenchmarkServing is a built-in logistic model over 10 in-process online
// features, through the real server at 1,000 requests a second (open
// loop, 5 s). Target: p99 under 5 ms.
func BenchmarkServing(b *testing.B) {
	h := newHarness(b, Options{})
	servingSetup(b, h, logisticSpec, 20*time.Millisecond)
	b.ResetTimer()
	from := time.Now()
	lat, paths, failed := openLoop(b, h, "/api/v1/predict/churn", 1000, 5*time.Second, func(i int) string {
		return fmt.Sprintf(`{"key":"m%d"}`, i%1000)
	})
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	reportLatency(b, h, "churn", from, lat)
	b.ReportMetric(float64(paths["model/model"]), "served-by-model")
}

// BenchmarkServingModelDown is the same with the model server down
// (connection refused): every request is answered by the fallback.
// Target: p99 under 2 ms and zero errors.
func BenchmarkServingModelDown(b *testing.B) {
	h := newHarness(b, Options{})
	servingSetup(b, h, `{"kind":"http","url":"http://127.0.0.1:1/predict"}`, 20*time.Millisecond)
	b.ResetTimer()
	from := time.Now()
	lat, paths, failed := openLoop(b, h, "/api/v1/predict/churn", 1000, 5*time.Second, func(i int) string {
		return fmt.Sprintf(`{"key":"m%d"}`, i%1000)
	})
	b.StopTimer()
	if failed > 0 || paths["fallback/error"] != len(lat) {
		b.Fatalf("%d failed; paths %v", failed, paths)
	}
	reportLatency(b, h, "churn", from, lat)
	b.ReportMetric(float64(failed), "errors")
}

// BenchmarkServingSoak serves at 1,000 requests a second for
// BATON_SOAK (default 20s; the figure is 10m) and reports the heap
// at the start and the end: memory must stay flat.
func BenchmarkServingSoak(b *testing.B) {
	d := 20 * time.Second
	if v, err := time.ParseDuration(getenv("BATON_SOAK")); err == nil {
		d = v
	}
	h := newHarness(b, Options{})
	servingSetup(b, h, logisticSpec, 20*time.Millisecond)
	// A shadow version too, so its queue and stats are in the picture.
	modelVersion(b, h, "churn", `{"kind":"logistic","bias":-0.5,"weights":{"f0":0.01}}`, store.ModelShadow)
	b.ResetTimer()
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	_, _, _ = openLoop(b, h, "/api/v1/predict/churn", 1000, 5*time.Second, func(i int) string { return fmt.Sprintf(`{"key":"m%d"}`, i%1000) })
	start := heap()
	// The heap every 30 s through the soak: flat means no trend.
	var samples []float64
	var smu sync.Mutex
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h := heap()
				smu.Lock()
				samples = append(samples, h)
				smu.Unlock()
			}
		}
	}()
	lat, _, failed := openLoop(b, h, "/api/v1/predict/churn", 1000, d, func(i int) string { return fmt.Sprintf(`{"key":"m%d"}`, i%1000) })
	close(done)
	end := heap()
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d failed", failed)
	}
	smu.Lock()
	if len(samples) > 0 {
		b.Logf("heap MiB every 30 s: %.1f", samples)
		b.ReportMetric(slices.Max(samples), "heap-MiB-max")
	}
	smu.Unlock()
	b.ReportMetric(start, "heap-MiB-start")
	b.ReportMetric(end, "heap-MiB-end")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

func featureParse(defs string) (*feature.Defs, error) { return feature.Parse("f.yaml", []byte(defs)) }

func featureApply(h *harness, d *feature.Defs) error {
	_, err := feature.Apply(context.Background(), h.st, "f.yaml", d)
	return err
}

func getenv(k string) string { return os.Getenv(k) }

// TestRolloutEndToEnd runs a real server with a short rollout interval: a
// canary whose model server fails half its requests is rolled back by the
// leader's loop, publishes canary_failed, and stops getting traffic.
func TestRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, `signals:
  - name: canary_passed
    params:
      model: {type: string, required: true}
      version: {type: string, required: true}
      score: {type: float, required: true}
  - name: canary_failed
    params:
      model: {type: string, required: true}
      version: {type: string, required: true}
      score: {type: float, required: true}
      reason: {type: string}
`)
	var n atomic.Int64
	ext := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1)%2 == 0 {
			http.Error(w, "overloaded", 503)
			return
		}
		fmt.Fprint(w, `{"prediction": 0.9, "confidence": 0.9}`)
	})
	modelVersion(t, h, "m", `{"kind":"logistic","bias":2,"weights":{"x":0}}`, store.ModelCanary, store.ModelProduction)
	modelVersion(t, h, "m", `{"kind":"http","url":"`+ext+`"}`, store.ModelCanary)
	// A one-second window: enough requests reach both versions to judge
	// even when a busy machine serves only tens a second.
	eps := []serve.Endpoint{{Name: "m", Model: "m", Fallback: serve.Fallback{Static: 0.0},
		Rollout: &serve.RolloutConfig{Stages: []float64{50, 100}, Interval: serve.Duration(time.Second), MinRequests: 20}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts", nil, ""); r.code != 201 {
		t.Fatalf("start: %d %s", r.code, r.body)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt) // senders stop before the server, even if the test fails
	var canaryAfter, servedAfter atomic.Int64
	var rolledBack atomic.Bool
	for g := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				after := rolledBack.Load()
				r, err := h.try("POST", "/api/v1/predict/m", map[string]any{"key": fmt.Sprintf("u%d-%d", g, i), "features": map[string]any{"x": 1}}, "")
				if err != nil || r.code != 200 {
					t.Errorf("predict: %v %d %s", err, r.code, r.body)
					return
				}
				var resp serve.Response
				_ = json.Unmarshal(r.body, &resp)
				if after {
					servedAfter.Add(1)
					if resp.Canary {
						canaryAfter.Add(1)
					}
				}
			}
		})
	}
	waitUntil(t, 30*time.Second, func() bool {
		rs, _ := h.st.Rollouts(context.Background(), "m")
		st := h.s.serving.Statuses()
		return len(rs) == 1 && rs[0].Status == store.RolloutRolledBack && len(st) == 1 && st[0].Canary == 0
	}, "the rollout to roll back and the endpoint to drop the canary")
	rolledBack.Store(true)
	// Serve on after the rollback: 50 requests sent after it, of which a
	// canary still at 50% would take about half.
	waitUntil(t, 30*time.Second, func() bool { return servedAfter.Load() >= 50 }, "50 requests served after the rollback")
	halt()
	if c := canaryAfter.Load(); c != 0 {
		t.Fatalf("%d requests went to the canary after its rollback", c)
	}
	sigs, _ := h.st.Signals(context.Background(), store.SignalFilter{Name: "canary_failed"})
	if len(sigs) != 1 || !strings.Contains(string(sigs[0].Params["reason"]), "error High") {
		t.Fatalf("canary_failed: %+v", sigs)
	}
	if v, _ := h.st.ModelVersion(context.Background(), "m", 2); v.State != store.ModelRegistered {
		t.Fatalf("canary is %s", v.State)
	}
}

func httptestServer(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The predict answer goes out whole with its length (one write, not
// chunks); a prediction JSON cannot hold (+Inf from a linear model) is a
// 500 saying so, as when the answer was encoded by encoding/json alone.
func TestPredictAnswerEncoding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	modelVersion(t, h, "lin", `{"kind":"linear","bias":0,"weights":{"x":10}}`, store.ModelCanary, store.ModelProduction)
	// An answer of some 20 KB: more than the connection's buffer.
	items, _ := json.Marshal(slices.Repeat([]string{"title-<&>-0123456789"}, 1000))
	modelVersion(t, h, "big", `{"kind":"ranking","items":`+string(items)+`}`, store.ModelCanary, store.ModelProduction)
	eps := []serve.Endpoint{{Name: "lin", Model: "lin", Timeout: serve.Duration(5 * time.Second), Fallback: serve.Fallback{Static: 0.0}},
		{Name: "big", Model: "big", Timeout: serve.Duration(5 * time.Second), Fallback: serve.Fallback{Static: 0.0}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("apply endpoints: %d %s", r.code, r.body)
	}
	req, err := http.NewRequest("POST", h.url+"/api/v1/predict/big", strings.NewReader(`{"key":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.s.homeToken)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got serve.Response
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) > 0 || json.Unmarshal(body, &got) != nil ||
		len(got.Prediction.([]any)) != 1000 || body[len(body)-1] != '\n' || !strings.Contains(string(body), `"title-\u003c\u0026\u003e-0123456789"`) {
		t.Fatalf("answer %d, length %d of %d, encoding %v: %q", resp.StatusCode, resp.ContentLength, len(body), resp.TransferEncoding, body)
	}
	r := h.do(t, "POST", "/api/v1/predict/lin", `{"key":"k","features":{"x":1e308}}`, "")
	if r.code != 500 || !strings.Contains(string(r.body), "unsupported value: +Inf") {
		t.Fatalf("an infinite prediction: %d %s", r.code, r.body)
	}
}

// TestAbortRollout: an operator aborts a running rollout with a reason:
// its canary version goes back to registered at once (serving stops
// routing to it), the rollout is rolled back with the abort in its
// history, canary_failed says so; without a reason, or with nothing
// running, it is refused and nothing moves.
func TestAbortRollout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ctx := context.Background()
	h.apply(t, `signals:
  - name: canary_failed
    params:
      model: {type: string, required: true}
      version: {type: string, required: true}
      score: {type: float}
      reason: {type: string}
`)
	modelVersion(t, h, "m", `{"kind":"logistic","bias":2,"weights":{"x":0}}`, store.ModelCanary, store.ModelProduction)
	v2 := modelVersion(t, h, "m", `{"kind":"logistic","bias":-2,"weights":{"x":0}}`, store.ModelCanary)
	eps := []serve.Endpoint{{Name: "m", Model: "m", Fallback: serve.Fallback{Static: 0.0},
		Rollout: &serve.RolloutConfig{Stages: []float64{100}, Interval: serve.Duration(time.Hour), MinRequests: 20}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts/abort", map[string]any{"reason": "x"}, ""); r.code != 409 {
		t.Fatalf("abort with nothing running: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts", nil, ""); r.code != 201 {
		t.Fatalf("start: %d %s", r.code, r.body)
	}
	predict := func() serve.Response {
		var resp serve.Response
		h.do(t, "POST", "/api/v1/predict/m", map[string]any{"key": "u1", "features": map[string]any{"x": 1}}, "").json(t, &resp)
		return resp
	}
	if resp := predict(); !resp.Canary {
		t.Fatalf("at 100%% the canary serves: %+v", resp)
	}
	if r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts/abort", map[string]any{}, ""); r.code != 400 || !strings.Contains(string(r.body), "reason") {
		t.Fatalf("abort without a reason: %d %s", r.code, r.body)
	}
	if v, _ := h.st.ModelVersion(ctx, "m", v2); v.State != store.ModelCanary {
		t.Fatalf("a refused abort moved version %d to %s", v2, v.State)
	}
	var ro store.Rollout
	r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts/abort", map[string]any{"reason": "testing a hotfix"}, "")
	r.json(t, &ro)
	if r.code != 200 || ro.Status != store.RolloutRolledBack || !strings.Contains(string(ro.History), "aborted by local") || !strings.Contains(string(ro.History), "testing a hotfix") {
		t.Fatalf("abort: %d %s", r.code, r.body)
	}
	if v, _ := h.st.ModelVersion(ctx, "m", v2); v.State != store.ModelRegistered {
		t.Fatalf("after the abort version %d is %s", v2, v.State)
	}
	if resp := predict(); resp.Canary || resp.Version != 1 {
		t.Fatalf("after the abort: %+v", resp)
	}
	sigs, _ := h.st.Signals(ctx, store.SignalFilter{Name: "canary_failed"})
	if len(sigs) != 1 || !strings.Contains(string(sigs[0].Params["reason"]), "testing a hotfix") {
		t.Fatalf("canary_failed: %+v", sigs)
	}
	if r := h.do(t, "POST", "/api/v1/endpoints/m/rollouts/abort", map[string]any{"reason": "again"}, ""); r.code != 409 {
		t.Fatalf("a second abort: %d %s", r.code, r.body)
	}
}
