package feature

import (
	"io"
	"testing"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/baton-ml/baton/internal/store"
)

// What the external tests (package feature_test, which may import the
// packages beside this one, such as parquet) need of the package's
// internals and its internal tests.

const (
	BatchSize = batchSize
	DefsYAML  = defsYAML
)

func WriteAtomic(path string, fn func(io.Writer) error) error { return atomicfile.Write(path, fn) }

func OpenStore(t *testing.T) store.Store { return openStore(t) }
