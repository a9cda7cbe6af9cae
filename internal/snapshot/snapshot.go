// Package snapshot packs a flow's folder into a code snapshot and unpacks
// it where tasks run, as Metaflow's code package does: a flow version
// records the snapshot's digest, so a resume or a triggered run months
// later runs the code that was registered, on any worker, with no shared
// file system and whatever happened to the folder since.
//
// A snapshot is an uncompressed tar written deterministically: entries
// sorted by path, regular files and folders only, fixed times, owners and
// modes (0644, or 0755 for a file with any execute bit), relative paths.
// The same folder content gives the same bytes, so the same digest in the
// content-addressed artifact store, wherever the folder lives. Uncompressed
// on purpose: a compressor's output may change between Go releases, and
// with it every digest.
package snapshot

import (
	"archive/tar"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/fault"
)

// DefaultLimit caps the total size of the files in a snapshot unless
// Options.Limit says otherwise.
const DefaultLimit = 32 << 20

// MaxEntries caps the files and folders of a snapshot, packed or
// extracted: a folder with more is almost surely not just code.
const MaxEntries = 100_000

// epoch is every entry's time: a snapshot's bytes depend on content only.
var epoch = time.Unix(0, 0).UTC()

// Options configure Pack.
type Options struct {
	// Limit caps the total size of the files packed; DefaultLimit when 0.
	Limit int64
	// Exclude lists paths never packed, with what is under them: the
	// baton home and artifact folder when they sit in the flow's folder.
	Exclude []string
	// Hint ends the error of a folder over the limit: how to raise it.
	Hint string
}

// Skip is a path of the folder left out of a snapshot for what it is (a
// link leading out of the folder, a socket), not because it is ignored.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Packed describes a snapshot written by Pack.
type Packed struct {
	// Digest is the SHA-256 of the tar, Size its length.
	Digest string
	Size   int64
	// Files and Bytes count the regular files packed and their content.
	Files int
	Bytes int64
	// Skipped lists what was left out and why; the caller tells the user.
	Skipped []Skip
}

// File is a file of a folder and its size.
type File struct {
	Path string
	Size int64
}

// TooLargeError is a folder whose files exceed the limit. It matches
// fault.TooLarge.
type TooLargeError struct {
	Dir          string
	Total, Limit int64
	// Biggest are the largest files, largest first.
	Biggest []File
	Hint    string
}

func (e *TooLargeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "code snapshot of %s: its files take %s, over the %s limit; the biggest: ", e.Dir, size(e.Total), size(e.Limit))
	for i, f := range e.Biggest {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", f.Path, size(f.Size))
	}
	fmt.Fprintf(&b, ". Leave out what steps do not need with patterns in %s", filepath.Join(e.Dir, IgnoreFile))
	if e.Hint != "" {
		b.WriteString(", or " + e.Hint)
	}
	return b.String()
}

// Is sorts the error as input over a limit.
func (e *TooLargeError) Is(target error) bool { return target == fault.TooLarge }

// entry is one path to pack.
type entry struct {
	rel  string // slash-separated, relative to the root
	src  string // the file to read (a link's target)
	dir  bool
	exec bool
	size int64
}

// Pack writes the snapshot of folder dir to w. Nothing is written when
// the folder cannot be packed (over the limit, an unreadable file).
func Pack(dir string, w io.Writer, opt Options) (Packed, error) {
	if opt.Limit <= 0 {
		opt.Limit = DefaultLimit
	}
	entries, skipped, err := scan(dir, opt)
	if err != nil {
		return Packed{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)
	p := Packed{Skipped: skipped}
	for _, e := range entries {
		hdr := &tar.Header{Name: e.rel, ModTime: epoch, Mode: 0o644, Typeflag: tar.TypeReg, Size: e.size}
		if e.dir {
			hdr.Typeflag, hdr.Name, hdr.Mode, hdr.Size = tar.TypeDir, e.rel+"/", 0o755, 0
		} else if e.exec {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return Packed{}, fmt.Errorf("code snapshot of %s: %s: %w", dir, e.rel, err)
		}
		if e.dir {
			continue
		}
		if err := copyFile(tw, e); err != nil {
			return Packed{}, fmt.Errorf("code snapshot of %s: %w", dir, err)
		}
		p.Files++
		p.Bytes += e.size
	}
	if err := tw.Close(); err != nil {
		return Packed{}, fmt.Errorf("code snapshot of %s: %w", dir, err)
	}
	p.Digest, p.Size = hex.EncodeToString(h.Sum(nil)), cw.n
	return p, nil
}

// copyFile copies e's content, exactly the size scanned: a file that
// changed since is an error, not a snapshot that differs from its digest.
func copyFile(w io.Writer, e entry) error {
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size))
	if err != nil {
		return fmt.Errorf("%s: %w", e.rel, err)
	}
	if n != e.size {
		return fmt.Errorf("%s changed while it was packed: register the flow again", e.rel)
	}
	return nil
}

// scan lists what to pack, sorted, after the ignore patterns and the
// limit.
func scan(dir string, opt Options) ([]entry, []Skip, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("code snapshot: %w", err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, nil, fmt.Errorf("code snapshot: %w", err)
	}
	text, err := os.ReadFile(filepath.Join(root, IgnoreFile))
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		text = nil
	default:
		return nil, nil, fmt.Errorf("code snapshot: %w", err)
	}
	ig, err := ParseIgnore(filepath.Join(dir, IgnoreFile), string(text))
	if err != nil {
		return nil, nil, fault.Wrap(fault.Invalid, fmt.Errorf("code snapshot: %w", err))
	}
	exclude := map[string]bool{}
	for _, x := range opt.Exclude {
		if r, err := filepath.EvalSymlinks(x); err == nil {
			x = r
		}
		if a, err := filepath.Abs(x); err == nil {
			exclude[a] = true
		}
	}
	s := &scanner{root: root, dir: dir, ig: ig, exclude: exclude}
	if err := s.walk(root, ""); err != nil {
		return nil, nil, err
	}
	if s.total > opt.Limit {
		files := slices.Clone(s.files)
		slices.SortFunc(files, func(a, b File) int { return cmp.Or(cmp.Compare(b.Size, a.Size), strings.Compare(a.Path, b.Path)) })
		return nil, nil, &TooLargeError{Dir: dir, Total: s.total, Limit: opt.Limit, Biggest: files[:min(5, len(files))], Hint: opt.Hint}
	}
	return s.entries, s.skipped, nil
}

type scanner struct {
	root, dir string
	ig        *Ignore
	exclude   map[string]bool
	entries   []entry
	skipped   []Skip
	files     []File
	total     int64
}

// walk adds the entries under abs (rel from the root), in path order:
// os.ReadDir sorts by name, and a folder's entry precedes its content.
func (s *scanner) walk(abs, rel string) error {
	des, err := os.ReadDir(abs)
	if err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		p, r := filepath.Join(abs, name), name
		if rel != "" {
			r = rel + "/" + name
		}
		if s.exclude[p] {
			continue
		}
		typ := de.Type()
		src := p
		if typ&fs.ModeSymlink != 0 {
			target, why := s.inside(p)
			if why != "" {
				if !s.ig.Match(r, false) {
					s.skipped = append(s.skipped, Skip{r, why})
				}
				continue
			}
			src = target
			fi, err := os.Stat(target)
			if err != nil {
				return fmt.Errorf("code snapshot: %w", err)
			}
			typ = fi.Mode().Type()
			if typ.IsDir() {
				if !s.ig.Match(r, true) {
					s.skipped = append(s.skipped, Skip{r, "a link to a folder (links to files are packed as copies)"})
				}
				continue
			}
		}
		if s.ig.Match(r, typ.IsDir()) {
			continue
		}
		if len(s.entries) >= MaxEntries {
			return fault.Errorf(fault.TooLarge, "code snapshot of %s: more than %d files and folders; leave out what steps do not need with patterns in %s",
				s.dir, MaxEntries, filepath.Join(s.dir, IgnoreFile))
		}
		switch {
		case typ.IsDir():
			s.entries = append(s.entries, entry{rel: r, dir: true})
			if err := s.walk(p, r); err != nil {
				return err
			}
		case typ.IsRegular():
			fi, err := os.Stat(src)
			if err != nil {
				return fmt.Errorf("code snapshot: %w", err)
			}
			s.entries = append(s.entries, entry{rel: r, src: src, size: fi.Size(), exec: fi.Mode().Perm()&0o111 != 0})
			s.files = append(s.files, File{r, fi.Size()})
			s.total += fi.Size()
		default:
			s.skipped = append(s.skipped, Skip{r, "not a regular file or folder (" + typ.String() + ")"})
		}
	}
	return nil
}

// inside resolves link p and returns its target, or why it is not packed.
func (s *scanner) inside(p string) (string, string) {
	target, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "a link to nothing"
	}
	if err != nil { // a loop, an unreadable folder on the way
		return "", "a link that cannot be followed (" + err.Error() + ")"
	}
	rel, err := filepath.Rel(s.root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", "a link out of the folder, to " + target
	}
	if rel == "." {
		return "", "a link to the folder itself"
	}
	return target, ""
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// size formats n bytes for people.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64), ".0") + " MiB"
	case n >= 1<<10:
		return strconv.FormatInt((n+1<<9)>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// ParseLimit reads a size limit: a number of bytes, or one with a unit
// (K, M, G, with or without i and B: 64M, 64MiB and 64MB are all 64 MiB).
func ParseLimit(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	mult := map[string]int64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, or one with a unit (64MiB, 1G)", s)
	}
	return n * mult, nil
}
