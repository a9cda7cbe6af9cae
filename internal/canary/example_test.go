package canary_test

import (
	"fmt"

	"github.com/baton-ml/baton/internal/canary"
)

func ExampleJudge() {
	// Ten minutes of per-second latency and error rate on each side: the
	// canary's latency is up by about a third, its error rate unchanged.
	baseline := map[string][]float64{}
	canaryRun := map[string][]float64{}
	for i := range 600 {
		wobble := float64(i%20) - 9.5
		baseline["latency_ms"] = append(baseline["latency_ms"], 120+wobble)
		canaryRun["latency_ms"] = append(canaryRun["latency_ms"], 160+wobble)
		baseline["error_rate"] = append(baseline["error_rate"], 0.010+wobble/10000)
		canaryRun["error_rate"] = append(canaryRun["error_rate"], 0.010+wobble/10000)
	}
	cfg := canary.Config{Metrics: map[string]canary.MetricConfig{
		"error_rate": {Direction: canary.Increase, Critical: true},
		"latency_ms": {Direction: canary.Increase},
	}}
	res := canary.Judge(baseline, canaryRun, cfg)
	for _, m := range res.Metrics {
		fmt.Printf("%s: %s\n", m.Name, m.Classification)
	}
	fmt.Printf("score %.2f: %s\n", res.Score, res.Result)
	// Output:
	// error_rate: Pass
	// latency_ms: High
	// score 50.00: marginal
}
