//go:build !unix

package artifact

import (
	"io"
	"os"
)

func openRaw(path string) (io.ReadCloser, error) { return os.Open(path) }
