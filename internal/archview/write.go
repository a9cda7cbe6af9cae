package archview

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/baton-ml/baton/internal/atomicfile"
)

// WriteDir writes files into dir (created if needed). Each file goes to a
// temporary name in dir and is renamed over the old one, so a reader or a
// failure never sees a half-written view.
func WriteDir(dir string, files []File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.Name), []byte(f.Content)); err != nil {
			return err
		}
	}
	return nil
}
