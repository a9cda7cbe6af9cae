package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/store"
)

// A shell step's inputs are materialized once, before its first task runs,
// under in/STEP of the run's scratch folder, in the BATON_INPUT_DIR layout
// of the flows contract: <up>/<name> for a plain upstream step,
// <up>/<index>/<name> for a foreach step. Files are read-only copies, never
// links to the stored blobs, which a task could chmod and change for every
// run that shares them.
//
// A join over a wide foreach makes thousands of folders and files. On a
// disk that is the kernel's work, not the copying (on ext4 without a
// journal, mostly the inode allocator stepping over recently deleted
// inodes), and two kernel locks decide how much of it can overlap:
//   - an entry is made or removed in a folder under that folder's lock, so
//     thousands of <index> folders made in one <up> folder are made one at
//     a time: each is filled instead in a staging folder of one of
//     inputWorkers goroutines and moved into place whole (one rename);
//   - removing a folder on a disk mounted with discard waits for the
//     device to discard its block, still under its parent's lock: each
//     folder is moved into a drop folder of one of inputWorkers goroutines
//     and removed there, so the waits overlap.
//
// Staging and drop folders sit beside the step folders in in/, named with a
// leading dot that no step name has, on the same file system (a rename
// never copies).

// inputWorkers is how many goroutines fill, and remove, a step's inputs.
const inputWorkers = 4

// inputDir is one step's materialized inputs.
type inputDir struct {
	// mu is held while the inputs are filled or removed: the step's first
	// task fills them while the others wait.
	mu      sync.Mutex
	filled  bool
	removed bool
	path    string
	err     error
	// What was made, for remove: the folders made in place (in/STEP and
	// the <up> folders of foreach steps in it, parents first), and the
	// units moved into them.
	dirs  []string
	units []*inputUnit
}

// inputUnit is a folder of inputs made off to the side and moved in whole:
// a foreach task's <up>/<index>, or a plain step's <up>.
type inputUnit struct {
	parent  string // the folder it goes in (one of inputDir.dirs)
	name    string // its name there
	stage   string // its name while staged or dropped: unique in the step
	subdirs []string
	files   []inputFile
	placed  bool // moved into parent
}

type inputFile struct{ name, digest string }

// add records artifact a in u, with the folders its name needs.
func (u *inputUnit) add(a store.Artifact) {
	for i := range len(a.Name) {
		if a.Name[i] != '/' {
			continue
		}
		if d := a.Name[:i]; !containsStr(u.subdirs, d) {
			u.subdirs = append(u.subdirs, d)
		}
	}
	u.files = append(u.files, inputFile{name: a.Name, digest: a.Digest})
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inputDir returns the folder of step s's inputs, filling it on the first
// call.
func (r *runner) inputDir(ctx context.Context, s *stepRun) (string, error) {
	in := &s.inputs
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.filled {
		in.filled = true
		if in.removed {
			in.err = errors.New("the step's inputs were removed: it has ended")
		} else {
			in.err = r.fillInputs(ctx, s)
		}
	}
	return in.path, in.err
}

// fillInputs materializes the artifacts of the steps s needs; see the top
// of this file.
func (r *runner) fillInputs(ctx context.Context, s *stepRun) error {
	in := &s.inputs
	root := filepath.Join(r.tmp, "in")
	in.path = filepath.Join(root, s.def.Name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := in.mkdir(in.path); err != nil {
		return err
	}
	for _, up := range s.needs {
		arts, err := r.e.st.Artifacts(ctx, store.ArtifactFilter{RunID: r.run.ID, Step: up.def.Name, Index: -1})
		if err != nil {
			return err
		}
		if len(arts) == 0 {
			continue
		}
		if !up.foreach {
			u := &inputUnit{parent: in.path, name: up.def.Name}
			for _, a := range arts {
				u.add(a)
			}
			in.units = append(in.units, u)
			continue
		}
		p := filepath.Join(in.path, up.def.Name)
		if err := in.mkdir(p); err != nil {
			return err
		}
		byIndex := map[int]*inputUnit{}
		for _, a := range arts {
			u := byIndex[a.Index]
			if u == nil {
				u = &inputUnit{parent: p, name: strconv.Itoa(a.Index)}
				byIndex[a.Index] = u
				in.units = append(in.units, u)
			}
			u.add(a)
		}
	}
	for i, u := range in.units {
		u.stage = strconv.Itoa(i)
	}
	return in.each(root, ".fill-"+s.def.Name, func(work int, _ string, u *inputUnit, parent int) error {
		return r.fillUnit(ctx, work, u, parent, in.path)
	})
}

// mkdir makes folder p, which may exist (a step filled again in the same
// scratch folder), and records it for remove.
func (in *inputDir) mkdir(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	in.dirs = append(in.dirs, p)
	return nil
}

// fillUnit makes unit u in the staging folder work and moves it into its
// parent folder.
func (r *runner) fillUnit(ctx context.Context, work int, u *inputUnit, parent int, top string) error {
	fail := func(name string, err error) error {
		rel, _ := filepath.Rel(top, filepath.Join(u.parent, u.name, name))
		return fmt.Errorf("input %s: %w", filepath.ToSlash(rel), err)
	}
	if err := unix.Mkdirat(work, u.stage, 0o755); err != nil {
		return fail("", err)
	}
	for _, d := range u.subdirs {
		if err := unix.Mkdirat(work, u.stage+"/"+d, 0o755); err != nil {
			return fail(d, err)
		}
	}
	for _, f := range u.files {
		fd, err := unix.Openat(work, u.stage+"/"+f.name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
		if err != nil {
			return fail(f.name, err)
		}
		_, err = r.e.blobs.CopyTo(ctx, f.digest, fdWriter(fd))
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(f.name, err)
		}
	}
	if err := unix.Renameat(work, u.stage, parent, u.name); err != nil {
		return fail("", err)
	}
	u.placed = true
	return nil
}

// each runs fn on every unit from inputWorkers goroutines, each with a
// folder of its own named prefix-N in root (open as work, and its path) and
// the unit's parent folder (open). It stops at the first error, which it
// returns. The goroutines' folders are removed after, when empty.
func (in *inputDir) each(root, prefix string, fn func(work int, workPath string, u *inputUnit, parent int) error) error {
	if len(in.units) == 0 {
		return nil
	}
	parents := map[string]int{}
	defer func() {
		for _, fd := range parents {
			unix.Close(fd)
		}
	}()
	for _, u := range in.units {
		if _, ok := parents[u.parent]; ok {
			continue
		}
		fd, err := openDir(unix.AT_FDCWD, u.parent)
		if err != nil {
			return err
		}
		parents[u.parent] = fd
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		errs   = make([]error, min(inputWorkers, len(in.units)))
	)
	for w := range errs {
		wg.Go(func() {
			dir := filepath.Join(root, prefix+"-"+strconv.Itoa(w))
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				errs[w] = err
				failed.Store(true)
				return
			}
			defer unix.Rmdir(dir)
			work, err := openDir(unix.AT_FDCWD, dir)
			if err != nil {
				errs[w] = err
				failed.Store(true)
				return
			}
			defer unix.Close(work)
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(in.units) {
					return
				}
				u := in.units[i]
				if err := fn(work, dir, u, parents[u.parent]); err != nil {
					errs[w] = err
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// remove deletes what fillInputs made, once: every unit it placed, moved
// into a drop folder and removed there, then the folders it made in
// place. Whatever a task added is left for the caller's RemoveAll of the
// run's scratch folder, as is a unit a task replaced with a link (which
// is never followed).
func (in *inputDir) remove() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.removed {
		return
	}
	in.removed = true
	if len(in.dirs) == 0 {
		return
	}
	root := filepath.Dir(in.path)
	step := filepath.Base(in.path)
	in.each(root, ".drop-"+step, func(drop int, dropPath string, u *inputUnit, parent int) error {
		if !u.placed {
			return nil
		}
		if unix.Renameat(parent, u.name, drop, u.stage) != nil {
			return nil // a task moved or removed it
		}
		if len(u.subdirs) == 0 {
			if fd, err := openDir(drop, u.stage); err == nil {
				for _, f := range u.files {
					unix.Unlinkat(fd, f.name, 0)
				}
				unix.Close(fd)
				if unix.Unlinkat(drop, u.stage, unix.AT_REMOVEDIR) == nil {
					return nil
				}
			}
		}
		// Nested folders, something a task added, or not a folder any
		// more: os.RemoveAll never follows a link.
		os.RemoveAll(filepath.Join(dropPath, u.stage))
		return nil
	})
	for i := len(in.dirs) - 1; i >= 0; i-- {
		unix.Rmdir(in.dirs[i])
	}
	in.units, in.dirs = nil, nil
}

func openDir(at int, path string) (int, error) {
	for {
		fd, err := unix.Openat(at, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// fdWriter writes to a file descriptor: os.NewFile would register the
// file with the runtime's poller, which costs more than writing a small
// input.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
