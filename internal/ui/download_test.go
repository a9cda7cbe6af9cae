package ui

import (
	"testing"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

// A task's download link is its artifact's address in the API, which
// names a nested task by its path and a loop's task by its iteration.
func TestDownloadURLNamesTheTask(t *testing.T) {
	for _, c := range []struct {
		k    store.TaskKey
		st   store.Step
		want string
	}{
		{store.TaskKey{RunID: 7, Step: "plain"}, store.Step{Name: "plain", NumTasks: 1}, "/api/v1/artifacts/7/plain/out.txt"},
		{store.TaskKey{RunID: 7, Step: "fan", Index: 2}, store.Step{Name: "fan", Foreach: true, NumTasks: 3}, "/api/v1/artifacts/7/fan/2/out.txt"},
		{store.TaskKey{RunID: 7, Step: "inner", Index: 3}, store.Step{Name: "inner", Foreach: true, NumTasks: 4, Shape: store.Shape{{2}, {1, 3}}},
			"/api/v1/artifacts/7/inner/1/2/out.txt"},
		{store.TaskKey{RunID: 7, Step: "spin", Index: 4}, store.Step{Name: "spin", NumTasks: 6}, "/api/v1/artifacts/7/spin/4/out.txt"},
	} {
		if got := downloadURL(c.k, "out.txt", c.st); got != c.want {
			t.Errorf("%s: %s, want %s", c.k, got, c.want)
		}
	}
}

// A run page lists a nested task by its path, a flat one by its index.
func TestTaskLabels(t *testing.T) {
	if got := (view.Task{Index: 5, Path: []int{1, 2}}).Label(); got != "1/2" {
		t.Fatalf("nested: %s", got)
	}
	if got := (view.Task{Index: 5, Path: []int{5}}).Label(); got != "5" {
		t.Fatalf("one level: %s", got)
	}
}
