package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/baton-ml/baton/internal/flow"
)

// paramFile is where a param too large for the environment waits for the
// run's shell tasks: in the run's temporary folder, removed with it.
func (r *runner) paramFile(name string) string {
	return filepath.Join(r.tmp, "params", name)
}

// writeParams writes the file of every param too large for the
// environment, as ParamEnv renders it (a string as its text, anything
// else as compact JSON). Each file is written whole under a temporary name
// and renamed, so a task never reads half of one.
func (r *runner) writeParams() error {
	inEnv := flow.EnvParams(r.run.Params)
	for name, v := range r.run.Params {
		if inEnv[name] {
			continue
		}
		p := r.paramFile(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), "."+name+"-*")
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		_, err = tmp.WriteString(flow.ParamEnv(v))
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("param %s: %w", name, err)
		}
	}
	return nil
}
