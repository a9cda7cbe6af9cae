package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/baton-ml/baton/internal/artifact"
)

// DefaultExtractLimit caps the content extracted from a snapshot whose
// size is not known.
const DefaultExtractLimit = 1 << 30

// Cache extracts snapshots from the artifact store into folders named by
// their digests, once per digest and machine: tasks of every run of a
// version, in every process sharing the folder, run in the same one.
type Cache struct {
	dir   string
	blobs *artifact.Store

	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done chan struct{}
	err  error
}

// NewCache returns a cache in folder dir (made when first needed) over
// blobs.
func NewCache(dir string, blobs *artifact.Store) *Cache {
	return &Cache{dir: dir, blobs: blobs, calls: map[string]*call{}}
}

// Dir returns the folder holding snapshot digest, extracting it first if
// no process has. size is the snapshot's size (0: unknown), which bounds
// what is extracted. A folder appears whole or not at all: extraction
// goes to a temporary folder renamed into place, so a crash or a
// concurrent process never leaves or sees a partial one.
func (c *Cache) Dir(ctx context.Context, digest string, size int64) (string, error) {
	if !artifact.ValidDigest(digest) {
		return "", fmt.Errorf("code snapshot %q: not a SHA-256 digest", digest)
	}
	final := filepath.Join(c.dir, digest)
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	c.mu.Lock()
	cl := c.calls[digest]
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		c.calls[digest] = cl
		c.mu.Unlock()
		cl.err = c.extract(ctx, digest, size, final)
		close(cl.done)
		c.mu.Lock()
		delete(c.calls, digest)
		c.mu.Unlock()
	} else {
		c.mu.Unlock()
		select {
		case <-cl.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if cl.err != nil {
		return "", cl.err
	}
	return final, nil
}

func (c *Cache) extract(ctx context.Context, digest string, size int64, final string) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-"+digest[:12]+"-")
	if err != nil {
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = RemoveAll(tmp)
		}
	}()
	rc, err := c.blobs.Open(ctx, digest)
	if err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	defer rc.Close()
	limit := int64(DefaultExtractLimit)
	if size > 0 {
		// An uncompressed tar holds no more content than its own size.
		limit = size
	}
	if err := Extract(rc, tmp, limit); err != nil {
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	// Read to the end: the store checks the digest there, and a
	// snapshot that does not match it is not used.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if fi, serr := os.Stat(final); serr == nil && fi.IsDir() {
			return nil // another process extracted it first
		}
		return fmt.Errorf("code snapshot %s: %w", digest, err)
	}
	keep = true
	return nil
}
