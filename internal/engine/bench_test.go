package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

func items(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(strconv.Itoa(i))
	}
	return out
}

// BenchmarkShellForeach runs a 2,000-task foreach of tiny shell steps end
// to end: durable state, artifacts, logs. Target: >= 600 tasks/s.
func BenchmarkShellForeach(b *testing.B) {
	const n = 2000
	f := &flow.Flow{Name: "shell-foreach", Steps: []flow.Step{{
		Name: "work", Foreach: &flow.Foreach{Items: items(n)},
		Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`,
	}}}
	benchFlow(b, f, n, nil)
}

// BenchmarkGoForeach runs a foreach of in-process no-op Go steps. Target:
// >= 5,000 tasks/s.
func BenchmarkGoForeach(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := &flow.Flow{Name: "go-foreach", Steps: []flow.Step{{Name: "work", Foreach: &flow.Foreach{Items: items(n)}}}}
			benchFlow(b, f, n, map[string]engine.GoFunc{"work": func(context.Context, *engine.Task) error { return nil }})
		})
	}
}

// BenchmarkChainOverhead runs a chain of 200 steps, one no-op task each,
// and reports the median time from a task becoming ready (its upstream
// committed) to it starting, and from the upstream task finishing to the
// downstream one starting. Target: median ready-to-started under 1 ms.
func BenchmarkChainOverhead(b *testing.B) {
	const n = 200
	f := &flow.Flow{Name: "chain"}
	funcs := map[string]engine.GoFunc{}
	for i := range n {
		s := flow.Step{Name: fmt.Sprintf("s%03d", i)}
		if i > 0 {
			s.Needs = []string{fmt.Sprintf("s%03d", i-1)}
		}
		f.Steps = append(f.Steps, s)
		funcs[s.Name] = func(context.Context, *engine.Task) error { return nil }
	}
	var ready, gap []time.Duration
	e := newEnv(b, engine.Options{})
	for b.Loop() {
		r := e.start(b, f, nil)
		got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: funcs})
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("run: %v %s", err, got.Error)
		}
		var prev store.Task
		for i := range n {
			t := e.tasks(b, r.ID, fmt.Sprintf("s%03d", i))[0]
			ready = append(ready, t.StartedAt.Sub(t.ReadyAt))
			if i > 0 {
				gap = append(gap, t.StartedAt.Sub(prev.FinishedAt))
			}
			prev = t
		}
	}
	b.ReportMetric(float64(median(ready).Microseconds()), "µs-ready-to-start(median)")
	b.ReportMetric(float64(median(gap).Microseconds()), "µs-upstream-end-to-start(median)")
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func benchFlow(b *testing.B, f *flow.Flow, n int, funcs map[string]engine.GoFunc) {
	e := newEnv(b, engine.Options{})
	var total time.Duration
	for b.Loop() {
		r := e.start(b, f, nil)
		start := time.Now()
		got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: funcs})
		total += time.Since(start)
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("run: %v %s", err, got.Error)
		}
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "tasks/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "MiB-peak-RSS")
}

// peakRSS reads the process's high-water resident set size.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkNaiveShellLoop is the yardstick for BenchmarkShellForeach: the
// same 2,000 tiny shell commands run one after another with os/exec and no
// state, artifacts or logs at all. The ratio of the two is the cost of
// everything baton adds; the machine's process creation bounds both.
func BenchmarkNaiveShellLoop(b *testing.B) {
	const n = 2000
	dir := b.TempDir()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		for i := range n {
			cmd := exec.Command("/bin/sh", "-c", `printf '%s' "$ITEM" > "$OUT/out.txt"`)
			cmd.Env = append(os.Environ(), "ITEM="+strconv.Itoa(i), "OUT="+dir)
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "tasks/s")
}

// BenchmarkNestedForeach compares a nested foreach of 100 × 100 tiny shell
// tasks with a flat foreach of the same 10,000, run alternately in one
// engine so that both see the same machine: leaf tasks per second of each
// (the nest's 100 outer tasks count against it) and their ratio. Target:
// nested at least 0.9 of flat.
func BenchmarkNestedForeach(b *testing.B) {
	const outer, inner = 100, 100
	leaf := `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`
	flat := &flow.Flow{Name: "flat", Steps: []flow.Step{
		{Name: "start", Run: fmt.Sprintf(`awk 'BEGIN { printf "["; for (i = 0; i < %d; i++) printf "%%s%%d", (i ? "," : ""), i; print "]" }' > "$BATON_OUTPUT_DIR/xs.json"`, outer*inner)},
		{Name: "work", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "xs.json"}, Run: leaf},
	}}
	nested := &flow.Flow{Name: "nested", Steps: []flow.Step{
		{Name: "start", Run: fmt.Sprintf(`awk 'BEGIN { printf "["; for (i = 0; i < %d; i++) printf "%%s%%d", (i ? "," : ""), i; print "]" }' > "$BATON_OUTPUT_DIR/xs.json"`, outer)},
		{Name: "outer", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "xs.json"},
			Run: fmt.Sprintf(`awk 'BEGIN { printf "["; for (i = 0; i < %d; i++) printf "%%s%%d", (i ? "," : ""), i; print "]" }' > "$BATON_OUTPUT_DIR/ys.json"`, inner)},
		{Name: "work", Needs: []string{"outer"}, Foreach: &flow.Foreach{Artifact: "outer/ys.json"}, Run: leaf},
	}}
	e := newEnv(b, engine.Options{})
	run := func(f *flow.Flow) time.Duration {
		r := e.start(b, f, nil)
		start := time.Now()
		got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
		took := time.Since(start)
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("run: %v %s", err, got.Error)
		}
		if n := len(e.tasks(b, r.ID, "work")); n != outer*inner {
			b.Fatalf("%s: %d leaf tasks", f.Name, n)
		}
		return took
	}
	var flats, nests []time.Duration
	for b.Loop() {
		flats = append(flats, run(flat))
		nests = append(nests, run(nested))
	}
	f, n := median(flats), median(nests)
	b.ReportMetric(outer*inner/f.Seconds(), "flat-tasks/s")
	b.ReportMetric(outer*inner/n.Seconds(), "nested-tasks/s")
	b.ReportMetric(f.Seconds()/n.Seconds(), "nested/flat")
}

// BenchmarkSwitchAndLoop measures what a switch and a loop iteration cost
// the scheduler, on no-op Go steps so that only baton's work shows: a loop
// of 200 iterations of one step that switches back to itself, and a chain
// of 100 switches each taking one of two cases. Reported: the median time
// from a task finishing to the next one (the loop's next iteration, the
// chosen case) starting. Target: under 1 ms.
func BenchmarkSwitchAndLoop(b *testing.B) {
	const iterations, switches = 200, 100
	loop := &flow.Flow{Name: "loop", Steps: []flow.Step{
		{Name: "spin", Switch: &flow.Switch{Cases: map[string]string{"again": "spin", "done": "end"}, MaxIterations: iterations}},
		{Name: "end", Needs: []string{"spin"}},
	}}
	loopFuncs := map[string]engine.GoFunc{
		"spin": func(ctx context.Context, t *engine.Task) error {
			c := "again"
			if t.Key.Index == iterations-1 {
				c = "done"
			}
			return t.Output(ctx, "case", []byte(c))
		},
		"end": func(context.Context, *engine.Task) error { return nil },
	}
	chain := &flow.Flow{Name: "switches"}
	chainFuncs := map[string]engine.GoFunc{}
	prev := ""
	for i := range switches {
		name := fmt.Sprintf("s%03d", i)
		s := flow.Step{Name: name}
		if prev != "" {
			s.Needs = []string{prev}
		}
		next, other := fmt.Sprintf("s%03d", i+1), fmt.Sprintf("x%03d", i)
		if i == switches-1 {
			next = "last"
		}
		s.Switch = &flow.Switch{Cases: map[string]string{"on": next, "off": other}}
		chain.Steps = append(chain.Steps, s, flow.Step{Name: other, Needs: []string{name}})
		chainFuncs[name] = func(ctx context.Context, t *engine.Task) error { return t.Output(ctx, "case", []byte("on")) }
		chainFuncs[other] = func(context.Context, *engine.Task) error { return nil }
		prev = name
	}
	chain.Steps = append(chain.Steps, flow.Step{Name: "last", Needs: []string{prev}})
	chainFuncs["last"] = func(context.Context, *engine.Task) error { return nil }

	e := newEnv(b, engine.Options{})
	var loopGap, switchGap []time.Duration
	for b.Loop() {
		r := e.start(b, loop, nil)
		got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: loopFuncs})
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("loop: %v %s", err, got.Error)
		}
		ts := e.tasks(b, r.ID, "spin")
		if len(ts) != iterations {
			b.Fatalf("%d iterations", len(ts))
		}
		for i := 1; i < len(ts); i++ {
			loopGap = append(loopGap, ts[i].StartedAt.Sub(ts[i-1].FinishedAt))
		}
		r = e.start(b, chain, nil)
		got, err = e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: chainFuncs})
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("switches: %v %s", err, got.Error)
		}
		for i := 1; i < switches; i++ {
			up, me := e.tasks(b, r.ID, fmt.Sprintf("s%03d", i-1))[0], e.tasks(b, r.ID, fmt.Sprintf("s%03d", i))[0]
			switchGap = append(switchGap, me.StartedAt.Sub(up.FinishedAt))
			if x := e.tasks(b, r.ID, fmt.Sprintf("x%03d", i))[0]; x.Status != store.TaskSkipped {
				b.Fatalf("case not taken: %s", x.Status)
			}
		}
	}
	b.ReportMetric(float64(median(loopGap).Microseconds()), "µs-loop-iteration(median)")
	b.ReportMetric(float64(median(switchGap).Microseconds()), "µs-switch-to-case(median)")
}

// BenchmarkNestedForeach100k runs a nested foreach of 1,000 × 100 no-op Go
// tasks and its joins at both levels: 100,000 leaf tasks, reported as
// leaf tasks per second and peak memory.
func BenchmarkNestedForeach100k(b *testing.B) {
	const outer, inner = 1000, 100
	yes := true
	f := &flow.Flow{Name: "nest100k", Steps: []flow.Step{
		{Name: "start"},
		{Name: "outer", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "xs.json"}},
		{Name: "leaf", Needs: []string{"outer"}, Foreach: &flow.Foreach{Artifact: "outer/ys.json"}},
		{Name: "join-leaf", Needs: []string{"leaf"}},
		{Name: "join-outer", Needs: []string{"join-leaf"}, Join: &yes},
	}}
	list := func(n int) []byte { b, _ := json.Marshal(make([]int, n)); return b }
	funcs := map[string]engine.GoFunc{
		"start": func(ctx context.Context, t *engine.Task) error { return t.Output(ctx, "xs.json", list(outer)) },
		"outer": func(ctx context.Context, t *engine.Task) error { return t.Output(ctx, "ys.json", list(inner)) },
		"leaf":  func(context.Context, *engine.Task) error { return nil },
		"join-leaf": func(ctx context.Context, t *engine.Task) error {
			arts, err := t.Inputs(ctx, "leaf")
			if err != nil || len(arts) != 0 {
				return fmt.Errorf("join-leaf saw %d artifacts: %v", len(arts), err)
			}
			return t.Output(ctx, "n", []byte(strconv.Itoa(len(t.Path))))
		},
		"join-outer": func(ctx context.Context, t *engine.Task) error {
			arts, err := t.Inputs(ctx, "join-leaf")
			if err != nil || len(arts) != outer {
				return fmt.Errorf("join-outer saw %d artifacts: %v", len(arts), err)
			}
			return nil
		},
	}
	var total time.Duration
	e := newEnv(b, engine.Options{})
	for b.Loop() {
		r := e.start(b, f, nil)
		start := time.Now()
		got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: funcs})
		total += time.Since(start)
		if err != nil || got.Status != store.RunSucceeded {
			b.Fatalf("run: %v %s", err, got.Error)
		}
	}
	b.ReportMetric(float64(outer*inner*b.N)/total.Seconds(), "leaf-tasks/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "MiB-peak-RSS")
}
