package feature

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// StepFunc runs a flow's training_set steps: it reads the labels (an
// upstream artifact or a file in the flow's folder), builds the training
// set on the batch path with the home's event logs under featureDir, and
// stores it as the step's artifact, with quality.json beside it. A blocked
// computation fails the task, so nothing downstream runs and the step
// publishes nothing. A step that publishes features_ready gets the
// signal's params: feature_version, row_count, quality, and date when the
// run has a date param. parquet writes a .parquet output (package
// feature/parquet's Write).
func StepFunc(st store.Store, featureDir string, parquet TableWriter) engine.TrainingSetFunc {
	return func(ctx context.Context, t *engine.Task, dir string, s *flow.Step) error {
		spec := s.TrainingSet
		var data []byte
		var err error
		if step, name, ok := strings.Cut(spec.Labels, "/"); ok && slices.Contains(s.Needs, step) {
			data, err = t.Input(ctx, step, name)
		} else {
			data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(spec.Labels)))
		}
		if err != nil {
			return fmt.Errorf("labels %s: %w", spec.Labels, err)
		}
		labels, err := ReadLabels(bytes.NewReader(data), spec.Labels, spec.Time)
		if err != nil {
			return err
		}
		cat, err := Load(ctx, st)
		if err != nil {
			return err
		}
		feats, err := cat.Select(spec.Features)
		if err != nil {
			return err
		}
		tmp, err := os.MkdirTemp("", "baton-training-set-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, "out"+filepath.Ext(spec.Out))
		built, err := Build(ctx, st, cat, filepath.Join(featureDir, "log"), BuildOptions{
			Labels: labels, Features: feats, KeyCols: spec.Keys, Out: out, Parquet: parquet})
		fmt.Fprint(&t.Stdout, built.Report.Text())
		if err != nil {
			return err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if err := t.Output(ctx, spec.Out, b); err != nil {
			return err
		}
		rb, _ := json.MarshalIndent(built.Report, "", "  ")
		if err := t.Output(ctx, "quality.json", rb); err != nil {
			return err
		}
		fmt.Fprintf(&t.Stdout, "%s: %d rows, features %s (computation %d)\n", spec.Out, built.Report.Rows, built.FeatureVersion, built.Computation.ID)
		if !slices.Contains(s.Publish, "features_ready") {
			return nil
		}
		params := built.ReadyParams(t.Params["date"])
		// A contract that asks for it gets where the training set is, so
		// a subscriber trains on exactly this one (and registers it as
		// its lineage); others never see a param they did not declare.
		if ok, err := declares(ctx, st, "features_ready", "training_set"); err != nil {
			return err
		} else if ok {
			path := fmt.Sprintf("%d/%s/%s", t.Key.RunID, t.Key.Step, spec.Out)
			if s.Foreach != nil {
				path = fmt.Sprintf("%d/%s/%d/%s", t.Key.RunID, t.Key.Step, t.Key.Index, spec.Out)
			}
			params["training_set"], _ = json.Marshal(path)
		}
		pb, _ := json.Marshal(params)
		return t.Output(ctx, "features_ready.json", pb)
	}
}

// declares says whether signal's stored contract has param.
func declares(ctx context.Context, st store.SignalStore, signal, param string) (bool, error) {
	cs, err := st.SignalContracts(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		if c.Name != signal {
			continue
		}
		var spec flow.Signal
		if err := json.Unmarshal(c.Spec, &spec); err != nil {
			return false, fmt.Errorf("contract %s: %w", signal, err)
		}
		for _, p := range spec.Params {
			if p.Name == param {
				return true, nil
			}
		}
	}
	return false, nil
}
