package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/store/pgtest"
)

// TestApplyAPISnapshotsCode: flows applied through the API with a folder
// get a code snapshot of it, and the server's tasks (in process, or
// through the PostgreSQL queue by its workers) run the snapshot, not the
// folder as it is when they run.
func TestApplyAPISnapshotsCode(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]Options{"sqlite": {}, "queue": {Dispatch: engine.Queue}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if opt.Dispatch == engine.Queue {
				pgtest.Require(t)
			}
			h := newHarness(t, opt)
			dir := t.TempDir()
			script := func(v string) {
				t.Helper()
				p := filepath.Join(dir, "step.sh")
				_ = os.Remove(p)
				if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+v+" > \"$BATON_OUTPUT_DIR/v.txt\"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			apply := func() map[string]any {
				t.Helper()
				r := h.do(t, "POST", "/api/v1/flows", map[string]any{"dir": dir, "files": []map[string]any{
					{"path": "snap.yaml", "content": "name: snap\nsteps:\n  - {name: a, run: ./step.sh}\n"}}}, "")
				var out []map[string]any
				r.json(t, &out)
				if r.code != 200 || len(out) != 1 {
					t.Fatalf("apply: %d %s", r.code, r.body)
				}
				if code, _ := out[0]["code"].(string); len(code) != 64 {
					t.Fatalf("applied with a folder, no code snapshot: %s", r.body)
				}
				return out[0]
			}
			ranV := func(n int) string {
				t.Helper()
				if r := h.do(t, "POST", "/api/v1/flows/snap/runs", map[string]any{}, ""); r.code/100 != 2 {
					t.Fatalf("start a run: %d %s", r.code, r.body)
				}
				rs := h.waitRuns(t, "snap", n)
				run := rs[n-1]
				a, err := artifact.Resolve(context.Background(), h.st, artifact.Path{RunID: run.ID, Step: "a", Rest: "v.txt"})
				if err != nil {
					t.Fatalf("run %d (%s, %s): %v", run.ID, run.Status, run.Error, err)
				}
				b, err := h.blobs.Read(context.Background(), a.Digest)
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("v%d %s", run.FlowVersion, strings.TrimSpace(string(b)))
			}
			script("one")
			first := apply()
			script("two") // after the apply: not the registered code
			if got := ranV(1); got != "v1 one" {
				t.Fatalf("a run of version 1 ran %q; want v1 one (its snapshot)", got)
			}
			if again := apply(); again["version"].(float64) != 2 || again["code"] == first["code"] {
				t.Fatalf("the edited folder applied: %v; want version 2 with another snapshot", again)
			}
			if got := ranV(2); got != "v2 two" {
				t.Fatalf("a run of version 2 ran %q", got)
			}
		})
	}
}
