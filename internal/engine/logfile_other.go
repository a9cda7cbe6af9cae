//go:build !linux

package engine

import "os"

func newLogFile(dir, name string) (*os.File, error) { return unlinkedTemp(dir, name) }
