package online

import (
	"context"
	"fmt"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
)

// Prefix is the key prefix Open gives a Redis store: every baton process
// of a deployment shares it, so they share the store.
const Prefix = "baton"

// ErrUnknownURL is returned (wrapped, and marked fault.Invalid) by Open for
// a URL that names no online store.
var ErrUnknownURL = fault.New(fault.Invalid, "use memory (the default) or a redis:// URL")

// Open opens the online store url names: "memory" (or "") for the
// embedded store, which starts empty (feature.Engine.Replay fills it from
// the event log), or redis:// and rediss:// for Redis under Prefix, which
// must answer. It is the one place a URL becomes a store, for the server
// and the CLI alike.
func Open(ctx context.Context, url string) (feature.OnlineStore, error) {
	switch {
	case url == "" || url == "memory":
		return feature.NewMemory(), nil
	case strings.HasPrefix(url, "redis://") || strings.HasPrefix(url, "rediss://"):
		r, err := NewRedis(ctx, url, Prefix)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("online store %q: %w", url, ErrUnknownURL)
}

// Persistent reports whether s outlives the process: a command opening it
// can start at the event log's end instead of replaying the log.
func Persistent(s feature.OnlineStore) bool {
	_, mem := s.(*feature.Memory)
	return !mem
}
