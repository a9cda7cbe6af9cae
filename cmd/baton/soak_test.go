package main_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServerSoak drives a real server with 10,000 signals a minute for
// $BATON_SOAK (e.g. 10m) and samples its resident memory: idle under 100
// MB, and flat under load. It is skipped unless BATON_SOAK is set.
func TestServerSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("BATON_SOAK"))
	if err != nil {
		t.Skip("set BATON_SOAK=10m to run the soak test")
	}
	home, dir := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "flow", "apply", writeFile(t, dir, "signals.yaml", e2eSignals), writeFile(t, dir, "rare.yaml", `name: rare
params:
  row_count: {type: int, default: 0}
triggers:
  - signal: features_ready
    when: 'params.row_count % 100 == 0'
steps:
  - name: a
    run: 'true'
`)), 0)
	srv := startServer(t, home)
	// Idle memory is measured after a stretch of idleness: the stretch is
	// the measurement, and no event marks a server as settled (startServer
	// has already waited for it to answer).
	time.Sleep(5 * time.Second)
	idle := rss(t, srv.cmd.Process.Pid)
	t.Logf("idle RSS: %.1f MiB", idle)
	if idle > 100 {
		t.Errorf("idle server uses %.1f MiB, want under 100", idle)
	}
	const perMinute = 10000
	tick := time.NewTicker(time.Minute / perMinute)
	defer tick.Stop()
	end := time.Now().Add(d)
	next := time.Now().Add(15 * time.Second)
	var samples []float64
	sent, failed := 0, 0
	client := &http.Client{Timeout: 10 * time.Second}
	for time.Now().Before(end) {
		<-tick.C
		sent++
		body := fmt.Sprintf(`{"name": "features_ready", "params": {"date": "d", "row_count": %d}}`, sent)
		req, _ := http.NewRequest("POST", "http://"+srv.addr+"/api/v1/signals", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+homeToken(t, home))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 201 {
			failed++
		}
		if resp != nil {
			resp.Body.Close()
		}
		if time.Now().After(next) {
			m := rss(t, srv.cmd.Process.Pid)
			samples = append(samples, m)
			t.Logf("%s: %d signals sent, %d failed, RSS %.1f MiB", time.Until(end).Round(time.Second), sent, failed, m)
			next = next.Add(15 * time.Second)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d publishes failed", failed, sent)
	}
	if len(samples) >= 8 {
		// Flat: the last minute's peak is within 20% of the second minute's.
		early, late := maxOf(samples[4:8]), maxOf(samples[len(samples)-4:])
		t.Logf("RSS second minute peak %.1f MiB, last minute peak %.1f MiB", early, late)
		if late > early*1.2 {
			t.Errorf("memory grew from %.1f to %.1f MiB under steady load", early, late)
		}
	}
}

func rss(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
