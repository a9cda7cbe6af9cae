package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnsafe is returned (wrapped) for an archive Extract refuses: an entry
// that is not a regular file or folder (a link, a device), a path that is
// absolute or climbs out (../), a path given twice, or more content or
// entries than allowed.
var ErrUnsafe = errors.New("unsafe code snapshot")

// Extract unpacks the snapshot read from r into dir, an empty folder,
// leaving its files and folders read-only. It writes nothing outside dir,
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
	type file struct {
		name string
		exec bool
	}
	var files []file
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
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
			}
		case tar.TypeReg:
			if hdr.Size < 0 || hdr.Size > limit-total {
				return fmt.Errorf("%w: more than %d bytes of content", ErrUnsafe, limit)
			}
			total += hdr.Size
			if parent := path.Dir(name); parent != "." {
				if err := root.MkdirAll(parent, 0o755); err != nil {
					return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
				}
			}
			// O_EXCL: a path given twice is refused, not overwritten.
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
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
			files = append(files, file{name, hdr.Mode&0o111 != 0})
		default:
			return fmt.Errorf("%w: entry %q is not a regular file or folder (type %q)", ErrUnsafe, hdr.Name, hdr.Typeflag)
		}
	}
	for _, f := range files {
		mode := os.FileMode(0o444)
		if f.exec {
			mode = 0o555
		}
		if err := root.Chmod(f.name, mode); err != nil {
			return fmt.Errorf("extract code snapshot: %w", err)
		}
	}
	// Folders last, deepest first: a read-only folder takes no new entry.
	var dirs []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("extract code snapshot: %w", err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := root.Chmod(d, 0o555); err != nil {
			return fmt.Errorf("extract code snapshot: %w", err)
		}
	}
	return nil
}

// RemoveAll removes dir, an extracted snapshot or a failed extraction,
// whose folders Extract made read-only.
func RemoveAll(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
