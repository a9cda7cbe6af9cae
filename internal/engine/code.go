package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/baton-ml/baton/internal/store"
)

// codeDir returns the folder the shell steps of run runID of version v run
// in: a copy, for this run, of its code snapshot, which is extracted on
// this machine once per digest (Options.CodeDir), so a task runs the code
// registered with its version wherever it runs and whatever became of the
// folder since, and a task that changes its working folder (as root, the
// files' read-only modes do not stop it) changes it for its own run only;
// or, for a version without one (a Go SDK flow, one registered before
// snapshots), its folder.
func (e *Engine) codeDir(ctx context.Context, v store.FlowVersion, runID int64) (string, error) {
	if v.Code == "" {
		return v.Dir, nil
	}
	if e.blobs == nil {
		return "", errors.New("flow " + v.Flow + " has a code snapshot, and this engine no artifact store to read it from")
	}
	src, err := e.code.Dir(ctx, v.Code, v.CodeSize)
	if err != nil {
		return "", err
	}
	run := e.runTemp(runID)
	dst := filepath.Join(run, "code")
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil // copied by this process already (its coordinator or worker)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		return "", fmt.Errorf("code snapshot for run %d: %w", runID, err)
	}
	tmp, err := os.MkdirTemp(run, ".code-")
	if err != nil {
		return "", fmt.Errorf("code snapshot for run %d: %w", runID, err)
	}
	if err := copyTree(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("code snapshot for run %d: %w", runID, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Lstat(dst); serr == nil {
			return dst, nil // another goroutine of this process made it
		}
		return "", fmt.Errorf("code snapshot for run %d: %w", runID, err)
	}
	return dst, nil
}

// copyTree copies the folders and regular files under src (an extracted
// snapshot: nothing else is there) into dst, modes kept.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return fmt.Errorf("%s: not a file or a folder", rel)
	})
}
