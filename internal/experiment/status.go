package experiment

import (
	"context"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
)

// statusFrom lists, for each status an operator may set, the statuses it
// may be set from: a stopped experiment stays stopped.
var statusFrom = map[store.ExperimentStatus][]store.ExperimentStatus{
	store.ExperimentPaused:  {store.ExperimentRunning},
	store.ExperimentRunning: {store.ExperimentPaused},
	store.ExperimentStopped: {store.ExperimentRunning, store.ExperimentPaused},
}

// SetStatus pauses (every unit gets control), resumes or stops an
// experiment, with the reason recorded. It is the one use case behind `baton
// exp pause|resume|stop` and POST /api/v1/experiments/{name}/status.
func SetStatus(ctx context.Context, st store.ExperimentStore, name string, to store.ExperimentStatus, reason string) (store.Experiment, error) {
	from, ok := statusFrom[to]
	if !ok {
		return store.Experiment{}, fault.Invalidf("status", "%q: paused, running or stopped", to)
	}
	if reason == "" {
		return store.Experiment{}, fault.Invalidf("reason", "required: say why the experiment is %s", to)
	}
	// The store's error names the experiment.
	return st.SetExperimentStatus(ctx, name, from, to, reason)
}
