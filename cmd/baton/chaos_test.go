package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/testwait"
)

// chaosServer is one `baton server` on the shared PostgreSQL store that
// the chaos test kills and restarts.
type chaosServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

var chaosSeq atomic.Int64

func startChaosServer(t *testing.T, home, dsn string) *chaosServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "--addr", addr, "--run-lease", "2s", "--task-lease", "3s", "--drain", "1s")
	cmd.Env = append(os.Environ(), "BATON_HOME="+home, "BATON_DB="+dsn)
	// Each server's log, read back if a run gets stuck.
	logPath := fmt.Sprintf("%s/server-%d.log", home, chaosSeq.Add(1))
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	s := &chaosServer{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(s.done) }()
	return s
}

func (s *chaosServer) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// TestChaos publishes 2,000 signals that each trigger a run, while three
// servers on one PostgreSQL are SIGKILLed at random every few seconds and
// restarted. Every run must end succeeded, every signal must have fired
// exactly one run, and no task may be recorded as completed twice.
func TestChaos(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	n := 2000
	if testing.Short() {
		n = 300
	}
	dsn := pgtest.DSN(t)
	home, dir := t.TempDir(), t.TempDir()
	ledger := dir + "/ledger"
	flowFile := writeFile(t, dir, "chaos.yaml", fmt.Sprintf(`name: chaos
params:
  n: {type: int, default: 0}
triggers:
  - signal: tick
steps:
  - name: work
    run: |
      echo "$BATON_PARAM_N $BATON_ATTEMPT" >> %q
      echo "$BATON_PARAM_N" > "$BATON_OUTPUT_DIR/out"
  - name: after
    needs: [work]
    run: cat "$BATON_INPUT_DIR/work/out" > "$BATON_OUTPUT_DIR/copy"
`, ledger))
	sigFile := writeFile(t, dir, "signals.yaml", "signals:\n  - name: tick\n    params:\n      n: {type: int, required: true}\n")
	env := append(os.Environ(), "BATON_DB="+dsn)
	apply := exec.Command(bin, "flow", "apply", sigFile, flowFile)
	apply.Env = append(env, "BATON_HOME="+home)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}

	var mu sync.Mutex
	servers := make([]*chaosServer, 3)
	for i := range servers {
		servers[i] = startChaosServer(t, home, dsn)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			s.kill()
		}
	})
	ctx, stopChaos := context.WithCancel(context.Background())
	kills := 0
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(2000+rand.IntN(2000)) * time.Millisecond):
			}
			mu.Lock()
			i := rand.IntN(len(servers))
			servers[i].kill()
			servers[i] = startChaosServer(t, home, dsn)
			kills++
			mu.Unlock()
		}
	}()

	// Publish straight to the store, a few at a time, each twice (the
	// second must change nothing).
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	contracts, err := signal.Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	// Batches of 50, each once the servers have fired a run for every
	// signal before the previous batch: the publisher keeps pace with the
	// servers instead of flooding them, whichever of them is alive.
	chaosRuns := func() []store.Run {
		runs, err := st.Runs(context.Background(), store.RunFilter{Flow: "chaos", Limit: 10 * n})
		if err != nil {
			t.Fatal(err)
		}
		return runs
	}
	for i := range n {
		for range 2 {
			if _, _, err := signal.Publish(context.Background(), st, contracts, "tick", fmt.Sprintf("tick-%d", i),
				map[string]json.RawMessage{"n": json.RawMessage(fmt.Sprint(i))}, store.SignalSource{}); err != nil {
				t.Fatal(err)
			}
		}
		if i%50 == 49 && i >= 99 {
			// A leader's death delays firing by its run lease (2 s) and a
			// restart; a minute is generous. The query reads up to n runs:
			// every 50 ms is often enough.
			testwait.UntilEvery(t, time.Minute, 50*time.Millisecond, func() (bool, string) {
				runs := len(chaosRuns())
				return runs >= i+1-50, fmt.Sprintf("%d runs", runs)
			}, "runs fired for the %d signals before the last batch", i+1-50)
		}
	}

	// Wait for every run to end, chaos still going for a while. Alone
	// this takes about a minute and a half; the deadline is generous
	// because what is tested is that nothing is lost or done twice, not
	// how fast a loaded machine gets there (a stuck run still fails it).
	settle := time.Now().Add(20 * time.Second)
	var runs []store.Run
	stuck := func() {
		// Ask the live servers for their goroutines (SIGQUIT), to see
		// what holds a stuck run.
		mu.Lock()
		for _, sv := range servers {
			sv.cmd.Process.Signal(syscall.SIGQUIT)
			<-sv.done
		}
		mu.Unlock()
		for _, r := range runs {
			if r.Status.Final() {
				continue
			}
			steps, _ := st.Steps(context.Background(), r.ID)
			t.Logf("stuck run %d: %s owner %q lease %s", r.ID, r.Status, r.Owner, r.LeaseExpires.Format(time.RFC3339Nano))
			for _, s := range steps {
				tasks, _ := st.Tasks(context.Background(), r.ID, s.Name)
				for _, tk := range tasks {
					t.Logf("  step %s %s n=%d task %d %s attempts %d %q", s.Name, s.Status, s.NumTasks, tk.Index, tk.Status, tk.Attempts, tk.Error)
				}
			}
			logs, _ := filepath.Glob(home + "/server-*.log")
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if strings.Contains(string(b), fmt.Sprintf("run=%d ", r.ID)) || strings.Contains(string(b), "goroutine ") {
					t.Logf("---- %s\n%s", l, tail(string(b), 20000))
				}
			}
		}
	}
	// The query reads up to n runs from the database the servers share:
	// twice a second is often enough.
	testwait.UntilEvery(failFirst{t, stuck}, 6*time.Minute, 500*time.Millisecond, func() (bool, string) {
		runs = chaosRuns()
		ended := 0
		for _, r := range runs {
			if r.Status.Final() {
				ended++
			}
		}
		if time.Now().After(settle) {
			stopChaos()
		}
		return len(runs) >= n && ended == len(runs), fmt.Sprintf("%d runs, %d ended", len(runs), ended)
	}, "a run for each of the %d signals, every one ended", n)
	stopChaos()
	<-chaosDone
	t.Logf("%d servers killed with SIGKILL", kills)

	// Exactly one run per signal, and every one succeeded.
	runs = chaosRuns()
	if len(runs) != n {
		t.Errorf("%d runs for %d signals: triggers fired more or less than once", len(runs), n)
	}
	perParam := map[string]int{}
	for _, r := range runs {
		perParam[string(r.Params["n"])]++
		if r.Status != store.RunSucceeded {
			t.Errorf("run %d (n=%s): %s %q", r.ID, r.Params["n"], r.Status, r.Error)
		}
	}
	for p, c := range perParam {
		if c != 1 {
			t.Errorf("signal n=%s started %d runs", p, c)
		}
	}
	// No task completed twice: one succeeded attempt each.
	db, err := postgres.DB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dup int
	if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT run_id, step, idx FROM attempts WHERE status = 'succeeded'
		GROUP BY run_id, step, idx HAVING COUNT(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d tasks recorded as completed more than once", dup)
	}
	var tasks, succeeded int
	db.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'succeeded') FROM tasks`).Scan(&tasks, &succeeded)
	if tasks != 2*n || succeeded != 2*n {
		t.Errorf("tasks: %d, succeeded %d; want %d", tasks, succeeded, 2*n)
	}
	b, _ := os.ReadFile(ledger)
	lines := strings.Count(string(b), "\n")
	t.Logf("%d runs, %d task completions, %d executions of work (a task killed mid-run runs again)", len(runs), succeeded, lines)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
