package engine

import (
	"context"
	"errors"

	"github.com/baton-ml/baton/internal/store"
)

// codeDir returns the folder v's shell steps run in: its code snapshot,
// extracted on this machine once per digest (Options.CodeDir), so a task
// runs the code registered with its version wherever it runs and whatever
// became of the folder since; or, for a version without one (a Go SDK
// flow, one registered before snapshots), its folder.
func (e *Engine) codeDir(ctx context.Context, v store.FlowVersion) (string, error) {
	if v.Code == "" {
		return v.Dir, nil
	}
	if e.blobs == nil {
		return "", errors.New("flow " + v.Flow + " has a code snapshot, and this engine no artifact store to read it from")
	}
	return e.code.Dir(ctx, v.Code, v.CodeSize)
}
