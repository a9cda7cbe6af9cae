package bench_test

import (
	"context"
	"testing"

	"github.com/baton-ml/baton/internal/bench"
)

// The shell benchmark compares like with like: baton and a loop at the same
// parallelism, baton with one worker and a sequential loop, on the same
// task count, and reports all four rates and both ratios.
func TestShellComparesLikeWithLike(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 4 x 20 shell commands")
	}
	rs, err := bench.Run(context.Background(), bench.Config{Only: []string{"shell"}, Shell: 20, Workers: 2, Rounds: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results", len(rs))
	}
	r := rs[0]
	if r.N != 20 {
		t.Errorf("N = %d, want 20 (the same count on every side)", r.N)
	}
	for _, k := range []string{"baton_parallel_per_s", "loop_parallel_per_s", "baton_1_worker_per_s", "loop_sequential_per_s", "ratio_parallel", "ratio_1_worker"} {
		if v, ok := r.Values[k]; !ok || v <= 0 {
			t.Errorf("%s = %v (present: %v), want a positive figure", k, v, ok)
		}
	}
	if got, want := r.Values["ratio_parallel"], r.Values["baton_parallel_per_s"]/r.Values["loop_parallel_per_s"]; got != want {
		t.Errorf("ratio_parallel = %v, want %v", got, want)
	}
	if got, want := r.Values["ratio_1_worker"], r.Values["baton_1_worker_per_s"]/r.Values["loop_sequential_per_s"]; got != want {
		t.Errorf("ratio_1_worker = %v, want %v", got, want)
	}
}
