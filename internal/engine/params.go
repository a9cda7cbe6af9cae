package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/flow"
)

// paramFile is where a param too large for the environment waits for the
// run's shell tasks: in the run's temporary folder, removed with it.
func (r *runner) paramFile(name string) string {
	return filepath.Join(r.tmp, "params", name)
}

// writeParams writes the file of every param too large for the
// environment, as ParamEnv renders it (a string as its text, anything
// else as compact JSON). Each file is written whole under a temporary name
// and renamed, so a task never reads half of one. Like a step's inputs
// (dirfd.go), the files are made from the run's scratch folder's
// descriptor, following no link: a task of another run can guess this
// run's scratch path and put a link there before it starts.
func (r *runner) writeParams() error {
	inEnv := flow.EnvParams(r.run.Params)
	dir := -1
	defer func() {
		if dir >= 0 {
			unix.Close(dir)
		}
	}()
	for name, v := range r.run.Params {
		if inEnv[name] {
			continue
		}
		if dir < 0 {
			var err error
			if dir, err = r.openParams(); err != nil {
				return fmt.Errorf("param %s: %w", name, err)
			}
		}
		if err := writeFileAt(dir, name, flow.ParamEnv(v)); err != nil {
			return fmt.Errorf("param %s: %w", name, &fs.PathError{Op: "write", Path: r.paramFile(name), Err: err})
		}
	}
	return nil
}

// openParams makes and opens the params folder in the run's scratch
// folder.
func (r *runner) openParams() (int, error) {
	path := filepath.Join(r.tmp, "params")
	root, err := r.openScratch()
	if err != nil {
		return -1, linkInPlace(err)
	}
	defer unix.Close(root)
	if err := unix.Mkdirat(root, "params", 0o755); err != nil && err != unix.EEXIST {
		return -1, &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	fd, err := openDir(root, "params")
	if err != nil {
		return -1, linkInPlace(&fs.PathError{Op: "open", Path: path, Err: errors.Unwrap(err)})
	}
	return fd, nil
}

// linkInPlace marks err as errLinkInPlace when it says a link or a file
// was where a folder was opened.
func linkInPlace(err error) error {
	if !errors.Is(err, errLinkInPlace) && (errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)) {
		return fmt.Errorf("%w: %w", errLinkInPlace, err)
	}
	return err
}

// writeFileAt writes s to name in folder dir through a new file of a
// random name renamed over it.
func writeFileAt(dir int, name, s string) error {
	var tmp string
	var fd int
	for range 100 {
		tmp = "." + name + "-" + strconv.FormatUint(rand.Uint64(), 36)
		var err error
		fd, err = unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == unix.EEXIST || err == unix.EINTR {
			fd = -1
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	if fd < 0 {
		return unix.EEXIST
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err := f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, name)
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
	}
	return err
}
