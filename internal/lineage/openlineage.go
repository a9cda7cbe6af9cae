package lineage

import (
	"context"
	"crypto/sha1"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// OpenLineage run events, as in https://openlineage.io/spec/2-0-2/OpenLineage.json.
const (
	olSchema   = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
	olProducer = "https://github.com/baton-ml/baton"
	// Namespace of baton's jobs and of its signal datasets.
	olNamespace = "baton"
)

// Event is an OpenLineage RunEvent.
type Event struct {
	EventType string    `json:"eventType"`
	EventTime time.Time `json:"eventTime"`
	Run       olRun     `json:"run"`
	Job       olJob     `json:"job"`
	Inputs    []Dataset `json:"inputs"`
	Outputs   []Dataset `json:"outputs"`
	Producer  string    `json:"producer"`
	SchemaURL string    `json:"schemaURL"`
}

type olRun struct {
	RunID  string         `json:"runId"`
	Facets map[string]any `json:"facets,omitempty"`
}

type olJob struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Dataset is an OpenLineage dataset: baton's signals are the datasets its
// flows exchange.
type Dataset struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// runUUID makes a stable RFC 4122 (version 5 style) id for a baton run.
func runUUID(id int64) string {
	h := sha1.Sum([]byte(fmt.Sprintf("baton/run/%d", id)))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// OpenLineage returns the run events of run id: START once it started, and
// COMPLETE, FAIL or ABORT once it ended. Inputs are the signals that
// triggered it; outputs the signals it published; a run started by another
// run carries the parent facet.
func OpenLineage(ctx context.Context, st Store, id int64) ([]Event, error) {
	r, err := st.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	run := olRun{RunID: runUUID(id), Facets: map[string]any{}}
	inputs := []Dataset{}
	fires, err := st.Fires(ctx, store.FireFilter{RunID: id})
	if err != nil {
		return nil, err
	}
	for _, f := range fires {
		if f.SignalID != "" {
			if sg, err := st.Signal(ctx, f.SignalID); err == nil {
				inputs = append(inputs, Dataset{Namespace: olNamespace, Name: "signal/" + sg.Name})
			}
		}
		if f.SourceRun != 0 {
			if parent, err := st.Run(ctx, f.SourceRun); err == nil {
				run.Facets["parent"] = map[string]any{
					"_producer":  olProducer,
					"_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
					"run":        map[string]string{"runId": runUUID(parent.ID)},
					"job":        olJob{Namespace: olNamespace, Name: parent.Flow},
				}
			}
		}
	}
	outputs := []Dataset{}
	sigs, err := st.Signals(ctx, store.SignalFilter{SourceRun: id, Limit: 1000})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, sg := range sigs {
		if !seen[sg.Name] {
			seen[sg.Name] = true
			outputs = append(outputs, Dataset{Namespace: olNamespace, Name: "signal/" + sg.Name})
		}
	}
	job := olJob{Namespace: olNamespace, Name: r.Flow}
	var evs []Event
	if !r.StartedAt.IsZero() {
		evs = append(evs, Event{EventType: "START", EventTime: r.StartedAt, Run: run, Job: job, Inputs: inputs,
			Outputs: []Dataset{}, Producer: olProducer, SchemaURL: olSchema})
	}
	if r.Status.Final() {
		typ := map[store.RunStatus]string{store.RunSucceeded: "COMPLETE", store.RunFailed: "FAIL", store.RunCancelled: "ABORT"}[r.Status]
		evs = append(evs, Event{EventType: typ, EventTime: r.FinishedAt, Run: run, Job: job, Inputs: inputs,
			Outputs: outputs, Producer: olProducer, SchemaURL: olSchema})
	}
	if evs == nil {
		evs = []Event{}
	}
	return evs, nil
}
