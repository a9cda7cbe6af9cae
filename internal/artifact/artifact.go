// Package artifact is baton's content-addressed artifact storage: every blob
// is stored once under its SHA-256 digest, behind gocloud.dev/blob, so the
// same code serves a folder on the laptop (file://), tests (mem://) and a
// team's bucket (s3://, and anything that speaks S3). Blobs are immutable: a digest names exactly
// one content, and reads verify it.
package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	"github.com/baton-ml/baton/internal/fault"

	_ "gocloud.dev/blob/memblob" // mem:// buckets, for tests
	_ "gocloud.dev/blob/s3blob"  // s3:// buckets
)

// ErrNotFound is returned (wrapped) when no blob has the digest.
var ErrNotFound = fault.New(fault.NotFound, "blob not found")

// ErrCorrupt is returned (wrapped) when a stored blob's content does not
// hash to its digest.
var ErrCorrupt = errors.New("blob is corrupt")

// Store keeps blobs by digest.
type Store struct {
	bucket *blob.Bucket
	url    string
	// dir is the bucket's folder when it is local. Moves into it bypass
	// the bucket: fileblob writes every blob to a new temporary file and
	// renames it, and creating a file costs ~300µs on this project's
	// machines against ~30µs for a rename.
	dir      string
	madeDirs sync.Map // prefix folders known to exist
}

// Open opens the bucket at rawURL. A file:// URL (or a plain path) is a
// folder created if missing, with no metadata sidecar files.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	dir := ""
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("artifact store URL %q: %w", rawURL, err)
		}
		dir = u.Path
		if u.Host == "." {
			dir = "." + u.Path
		}
	case !strings.Contains(rawURL, "://"):
		dir = rawURL
	}
	var b *blob.Bucket
	var err error
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("artifact store %q: %w", rawURL, err)
		}
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("artifact store %q: %w", rawURL, err)
		}
		b, err = fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	} else {
		b, err = blob.OpenBucket(ctx, rawURL)
	}
	if err != nil {
		return nil, fmt.Errorf("open artifact store %q: %w", rawURL, err)
	}
	return &Store{bucket: b, url: rawURL, dir: dir}, nil
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// URL returns the bucket URL the store was opened with.
func (s *Store) URL() string { return s.url }

func key(digest string) string { return "sha256/" + digest[:2] + "/" + digest }

// ValidDigest reports whether d is a lower-case hex SHA-256.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for _, c := range d {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Exists reports whether a blob with digest is stored.
func (s *Store) Exists(ctx context.Context, digest string) (bool, error) {
	if !ValidDigest(digest) {
		return false, fmt.Errorf("digest %q is not a SHA-256", digest)
	}
	ok, err := s.bucket.Exists(ctx, key(digest))
	if err != nil {
		return false, fmt.Errorf("look up blob %s: %w", digest, err)
	}
	return ok, nil
}

// PutBytes stores b and returns its digest.
func (s *Store) PutBytes(ctx context.Context, b []byte) (string, int64, error) {
	sum := sha256.Sum256(b)
	d := hex.EncodeToString(sum[:])
	if err := s.write(ctx, d, bytes.NewReader(b)); err != nil {
		return "", 0, err
	}
	return d, int64(len(b)), nil
}

// PutFile stores the file at path and returns its digest and size. The file
// is read twice (hash, then copy) rather than buffered, so artifacts larger
// than memory work.
func (s *Store) PutFile(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("read artifact: %w", err)
	}
	defer f.Close()
	return s.PutSeeker(ctx, f)
}

// PutSeeker stores what rs holds from its start: it is read once to hash
// and once more to copy.
func (s *Store) PutSeeker(ctx context.Context, rs io.ReadSeeker) (string, int64, error) {
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("rewind: %w", err)
	}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, struct{ io.Reader }{rs}, *buf)
	copyBufs.Put(buf)
	if err != nil {
		return "", 0, fmt.Errorf("hash: %w", err)
	}
	d := hex.EncodeToString(h.Sum(nil))
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("rewind: %w", err)
	}
	if err := s.write(ctx, d, rs); err != nil {
		return "", 0, err
	}
	return d, n, nil
}

// MoveFile stores the file at path and removes it from path. In a local
// store the file itself is renamed into place (no copy); elsewhere it is
// uploaded and then deleted. The caller must not write to the file again.
func (s *Store) MoveFile(ctx context.Context, path string) (string, int64, error) {
	return s.move(ctx, pathSource(path), path)
}

// source is a file to move into the store: opened once, then renamed or
// removed by the name it was opened by.
type source interface {
	open() (rawReader, error)
	rename(final string) error
	remove() error
}

// rawReader is a file opened to be read and moved: an *os.File, or on
// Unix its bare descriptor.
type rawReader interface {
	io.ReadSeekCloser
	Chmod(mode fs.FileMode) error
}

// shared reports whether f has names besides the one it was opened by (a
// hard link): such a file is copied into the store, not moved and made
// read-only, since its other names are not the caller's to change.
func shared(f rawReader) bool {
	l, ok := f.(interface{ links() (uint64, error) })
	if !ok {
		return false
	}
	n, err := l.links()
	return err != nil || n > 1
}

type pathSource string

func (p pathSource) open() (rawReader, error)  { return openRaw(string(p)) }
func (p pathSource) rename(final string) error { return os.Rename(string(p), final) }
func (p pathSource) remove() error             { return os.Remove(string(p)) }

// move is MoveFile of src, named path in errors.
func (s *Store) move(ctx context.Context, src source, path string) (string, int64, error) {
	f, err := src.open()
	if err != nil {
		return "", 0, fmt.Errorf("read artifact: %w", err)
	}
	defer f.Close()
	if s.dir == "" {
		d, n, err := s.PutSeeker(ctx, f)
		if err == nil {
			err = src.remove()
		}
		return d, n, err
	}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, *buf)
	copyBufs.Put(buf)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	d := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(s.dir, filepath.FromSlash(key(d)))
	if _, err := os.Stat(final); err == nil {
		// Stored already: identical content is kept once.
		return d, n, src.remove()
	}
	prefix := filepath.Dir(final)
	if _, ok := s.madeDirs.Load(prefix); !ok {
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return "", 0, fmt.Errorf("store blob %s: %w", d, err)
		}
		s.madeDirs.Store(prefix, true)
	}
	if shared(f) {
		// A hard link to a file elsewhere (a task's `ln data.csv
		// $BATON_OUTPUT_DIR/`): moving it would make that file read-only
		// and the blob one more name of it, changed when it is.
		d, n, err := s.PutSeeker(ctx, f)
		if err != nil {
			return "", 0, err
		}
		return d, n, src.remove()
	}
	// The file hashed is the file made read-only, whatever its name
	// leads to now.
	if err := f.Chmod(0o444); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", d, err)
	}
	if err := src.rename(final); err != nil {
		// Another file system (EXDEV) or an odd file: copy instead.
		if _, _, perr := s.PutSeeker(ctx, f); perr != nil {
			return "", 0, perr
		}
		return d, n, src.remove()
	}
	return d, n, nil
}

// write stores r under digest d unless a blob with d exists already:
// identical content is stored once.
func (s *Store) write(ctx context.Context, d string, r io.Reader) error {
	k := key(d)
	if ok, err := s.bucket.Exists(ctx, k); err != nil {
		return fmt.Errorf("look up blob %s: %w", d, err)
	} else if ok {
		return nil
	}
	// The bucket writes to a temporary object and renames (file) or
	// commits (cloud) on Close, so a crash never leaves a partial blob
	// under the final key.
	w, err := s.bucket.NewWriter(ctx, k, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	// Copy through a pooled buffer, hiding ReadFrom/WriteTo: the bucket
	// writer's own ReadFrom allocates 1 MiB per blob, which dominated the
	// cost of small artifacts.
	buf := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *buf)
	copyBufs.Put(buf)
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	return nil
}

// Open returns a reader of the blob with digest d. The reader checks the
// content against d and fails at the end if they differ.
func (s *Store) Open(ctx context.Context, d string) (io.ReadCloser, error) {
	if !ValidDigest(d) {
		return nil, fmt.Errorf("digest %q is not a SHA-256", d)
	}
	r, err := s.bucket.NewReader(ctx, key(d), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("blob %s: %w (the artifact store at %s has lost it)", d, ErrNotFound, s.url)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return &verifier{r: r, h: sha256.New(), want: d}, nil
}

// Read returns the content of the blob with digest d.
func (s *Store) Read(ctx context.Context, d string) ([]byte, error) {
	r, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// WriteFile writes the blob with digest d to a new file at path with mode perm.
func (s *Store) WriteFile(ctx context.Context, d, path string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("materialize %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("materialize %s: %w", path, err)
	}
	if _, err := s.CopyTo(ctx, d, f); err != nil {
		f.Close()
		return fmt.Errorf("materialize %s: %w", path, err)
	}
	return f.Close()
}

// CopyTo writes the content of the blob with digest d to w and returns its
// size. The content is checked against d as it goes: a blob that does not
// hash to d is an error (ErrCorrupt) once its bytes were written, and the
// caller must discard what w received. A local store reads the blob's file
// through its descriptor alone, not the bucket's reader: for the small
// blobs a join copies by the thousand, opening through the bucket (an
// os.File registered with the runtime's poller, then a stat) cost more
// than the copy.
func (s *Store) CopyTo(ctx context.Context, d string, w io.Writer) (int64, error) {
	if !ValidDigest(d) {
		return 0, fmt.Errorf("digest %q is not a SHA-256", d)
	}
	var r io.ReadCloser
	if s.dir == "" {
		var err error
		if r, err = s.Open(ctx, d); err != nil {
			return 0, err
		}
	} else {
		f, err := openRaw(filepath.Join(s.dir, filepath.FromSlash(key(d))))
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("blob %s: %w (the artifact store at %s has lost it)", d, ErrNotFound, s.url)
		}
		if err != nil {
			return 0, fmt.Errorf("read blob %s: %w", d, err)
		}
		r = &verifier{r: f, h: sha256.New(), want: d}
	}
	defer r.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	// Plain Reader and Writer: neither side's ReadFrom or WriteTo may
	// bypass the verifier or allocate a buffer of its own.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *buf)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

type verifier struct {
	r    io.ReadCloser
	h    hash.Hash
	want string
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("blob %s: %w: its content hashes to %s", v.want, ErrCorrupt, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.r.Close() }

// ValidName checks an artifact name: a relative slash-separated path with no
// empty, "." or ".." segments, no backslashes or control characters.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("artifact name is empty")
	case !utf8.ValidString(name):
		return fmt.Errorf("artifact name %q is not valid UTF-8", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("artifact name %q is absolute; use a path relative to the output folder", name)
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("artifact name %q contains a backslash; separate folders with /", name)
	case len(name) > 1024:
		return fmt.Errorf("artifact name %.40q... is longer than 1024 bytes", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("artifact name %q contains a control character", name)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("artifact name %q has an empty path segment", name)
		case ".", "..":
			return fmt.Errorf("artifact name %q contains %q; names may not leave or refer to their folder", name, seg)
		}
	}
	return nil
}
