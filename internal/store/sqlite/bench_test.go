package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// BenchmarkApplyTaskFinish measures the store's cost of recording finished
// tasks (task row, attempt row, one artifact) in groups of the given size,
// as the engine's group committer does.
func BenchmarkApplyTaskFinish(b *testing.B) {
	for _, group := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("group", group), func(b *testing.B) {
			ctx := context.Background()
			s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "b.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			v, _, _ := s.PutFlowVersion(ctx, store.FlowVersion{Flow: "f", Digest: "d", Spec: []byte(`{}`)})
			r, _ := s.CreateRun(ctx, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: "manual"})
			s.AcquireRun(ctx, r.ID, "me", time.Hour)
			const n = 1 << 20
			if err := s.Apply(ctx, "me", &store.Batch{NewTasks: []store.NewTasks{{RunID: r.ID, Step: "s", Count: n, ReadyAt: time.Now()}}}); err != nil {
				b.Fatal(err)
			}
			zero := 0
			idx := 0
			b.ResetTimer()
			for b.Loop() {
				var batch store.Batch
				now := time.Now()
				for range group {
					k := store.TaskKey{RunID: r.ID, Step: "s", Index: idx % n}
					idx++
					batch.Tasks = append(batch.Tasks, store.TaskChange{TaskKey: k, Status: store.TaskSucceeded, Attempts: 1, StartedAt: now, FinishedAt: now, ExitCode: &zero})
					batch.Attempts = append(batch.Attempts, store.Attempt{TaskKey: k, Attempt: 1 + idx/n, Status: store.TaskSucceeded, StartedAt: now, FinishedAt: now, ExitCode: &zero})
					batch.Artifacts = append(batch.Artifacts, store.Artifact{TaskKey: k, Name: fmt.Sprint("out", idx/n), Digest: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Size: 10, CreatedAt: now})
				}
				if err := s.Apply(ctx, "me", &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*group), "µs/task")
		})
	}
}
