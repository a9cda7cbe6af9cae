package feature

import "encoding/json"

// ReadyParams are the params of the features_ready signal for a passed
// computation: feature_version, row_count, quality (status and metrics),
// and date when given (as JSON; nil for none). It is the one definition
// behind `baton feature training-set --publish`/`--signal-file` and a
// flow's training-set step that publishes features_ready.
func (b Built) ReadyParams(date json.RawMessage) map[string]json.RawMessage {
	m := func(x any) json.RawMessage { j, _ := json.Marshal(x); return j }
	p := map[string]json.RawMessage{
		"feature_version": m(b.FeatureVersion),
		"row_count":       m(b.Report.Rows),
		"quality":         m(map[string]any{"status": b.Report.Status, "metrics": b.Report.Metrics}),
	}
	if len(date) > 0 {
		p["date"] = date
	}
	return p
}
