package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrUnsafe is returned (wrapped) for an archive Extract refuses: an entry
// that is not a regular file or folder (a link, a device), a path that is
// absolute or climbs out (../), a path given twice, or more content or
// entries than allowed.
var ErrUnsafe = errors.New("unsafe code snapshot")

// Extract unpacks the snapshot read from r into dir, an empty folder,
// leaving its files read-only. Its folders stay writable by their owner,
// so that removing a home (rm -r, a test's temporary folder) needs no
// chmod first, as Go's module cache does. It writes nothing outside dir,
// whatever r holds: paths are checked and every file is made through an
// os.Root of dir. limit caps the content written.
func Extract(r io.Reader, dir string, limit int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract code snapshot: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var total int64
	made := map[string]bool{".": true} // folders known to exist
	mkdir := func(name string) error {
		if made[name] {
			return nil
		}
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		made[name] = true
		return nil
	}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("extract code snapshot: %w", err)
		}
		if n >= MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrUnsafe, MaxEntries)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		if !fs.ValidPath(name) || name == "." || strings.ContainsRune(name, 0) {
			return fmt.Errorf("%w: entry %q: not a relative path inside the folder", ErrUnsafe, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdir(name); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
			}
		case tar.TypeReg:
			if hdr.Size < 0 || hdr.Size > limit-total {
				return fmt.Errorf("%w: more than %d bytes of content", ErrUnsafe, limit)
			}
			total += hdr.Size
			if err := mkdir(path.Dir(name)); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
			}
			// Made read-only from the start (the mode binds later
			// opens, not this one). O_EXCL: a path given twice is
			// refused, not overwritten.
			mode := os.FileMode(0o444)
			if hdr.Mode&0o111 != 0 {
				mode = 0o555
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract code snapshot: %s: %w", name, err)
			}
		default:
			return fmt.Errorf("%w: entry %q is not a regular file or folder (type %q)", ErrUnsafe, hdr.Name, hdr.Typeflag)
		}
	}
	return nil
}

// RemoveAll removes dir, an extracted snapshot or a failed extraction.
func RemoveAll(dir string) error { return os.RemoveAll(dir) }
