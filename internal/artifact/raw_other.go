//go:build !unix

package artifact

import "os"

func openRaw(path string) (rawReader, error) { return os.Open(path) }
