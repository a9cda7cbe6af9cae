package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/store"
)

// slot is one worker's place to run a task. Its output folder is reused
// from task to task (emptied in between): on the machines baton is measured
// on, creating and removing a folder costs ~300µs, a fifth of a shell
// task's whole budget.
//
// A task runs as baton's user and may replace its output folder, the
// slot's folder above it, or a folder above that, with a link to any
// folder of that user. Baton never follows one: the slot's folder is
// opened when the slot is made, and the output folder is emptied, made
// and read from that descriptor one name at a time, refusing links. A
// task sees its output folder by path, though, so before each task, and
// before its outputs are stored, the slot's path is checked to still lead
// to the folder baton opened: if not, the slot is made again (before a
// task), or the task fails (after it), since what it wrote went elsewhere.
type slot struct {
	i    int
	root int    // the engine's folder of slots, open; the engine closes it
	dir  string // the slot's folder, as tasks see it
	out  string // BATON_OUTPUT_DIR: dir/out
	fd   int    // dir, open; -1 when it could not be made
	st   unix.Stat_t
	// buf and ents read folders: a slot runs one task at a time.
	buf  []byte
	ents []dirent
}

// errSlotMoved is what a task fails with when its slot's folder is no
// longer where tasks find it.
var errSlotMoved = errors.New("is no longer the folder baton made (a task replaced it, or a folder above it, with a link or another folder; baton follows no link out of its folders)")

// newSlots makes n slots under dir/slots/<pid>-<nonce>, clearing slot
// folders that dead processes left behind. It returns the slots, the
// folder they are in and that folder open, for the engine to close.
func newSlots(dir, owner string, n int) (chan *slot, string, int, error) {
	root := filepath.Join(dir, "slots")
	if entries, err := os.ReadDir(root); err == nil {
		host, _ := os.Hostname()
		for _, e := range entries {
			pid, _, _ := strings.Cut(e.Name(), "-")
			if OwnerGone(host + ":" + pid + ":x") {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", -1, fmt.Errorf("engine: slot folder: %w", err)
	}
	spreadSubfolders(root)
	parts := strings.Split(owner, ":")
	mine := filepath.Join(root, strconv.Itoa(os.Getpid())+"-"+parts[len(parts)-1])
	if err := os.Mkdir(mine, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, "", -1, fmt.Errorf("engine: slot folder: %w", err)
	}
	mineFd, err := openDir(unix.AT_FDCWD, mine)
	if err != nil {
		return nil, "", -1, fmt.Errorf("engine: slot folder %s: %w", mine, err)
	}
	ch := make(chan *slot, n)
	for i := range n {
		dir := filepath.Join(mine, strconv.Itoa(i))
		s := &slot{i: i, root: mineFd, dir: dir, out: filepath.Join(dir, "out"), fd: -1, buf: make([]byte, direntBufSize)}
		if err := s.make(); err != nil {
			close(ch)
			for s := range ch {
				s.close()
			}
			unix.Close(mineFd)
			return nil, "", -1, fmt.Errorf("engine: %w", err)
		}
		ch <- s
	}
	return ch, mine, mineFd, nil
}

// make makes the slot's folder and its output folder, and opens the
// slot's folder.
func (s *slot) make() error {
	name := strconv.Itoa(s.i)
	if err := unix.Mkdirat(s.root, name, 0o755); err != nil {
		return fmt.Errorf("worker slot: %w", &fs.PathError{Op: "mkdir", Path: s.dir, Err: err})
	}
	fd, err := openDir(s.root, name)
	if err != nil {
		return fmt.Errorf("worker slot: %w", &fs.PathError{Op: "open", Path: s.dir, Err: errors.Unwrap(err)})
	}
	if err := unix.Mkdirat(fd, "out", 0o755); err != nil {
		unix.Close(fd)
		return fmt.Errorf("worker slot: %w", &fs.PathError{Op: "mkdir", Path: s.out, Err: err})
	}
	if err := unix.Fstat(fd, &s.st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("worker slot: %w", &fs.PathError{Op: "stat", Path: s.dir, Err: err})
	}
	if !sameDir(s.dir, &s.st) {
		// Made from the engine's folder, which a task moved away.
		unix.Close(fd)
		return fmt.Errorf("worker slot %s %w; stop the tasks that change %s and restart baton",
			s.dir, errSlotMoved, filepath.Dir(s.dir))
	}
	s.fd = fd
	return nil
}

func (s *slot) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// reset makes the output folder empty for the next task, and the slot's
// folder again if a task replaced it.
func (s *slot) reset() error {
	if s.fd < 0 || !sameDir(s.dir, &s.st) {
		s.close()
		// In the engine's folder, from its descriptor: what a task put
		// in the slot's place is removed, a link itself, not followed.
		if err := removeAllAt(s.root, strconv.Itoa(s.i)); err != nil {
			return fmt.Errorf("worker slot %s: %w", s.dir, err)
		}
		return s.make()
	}
	fd, err := openDir(s.fd, "out")
	if err == nil {
		empty, err := dirEmpty(fd, s.buf)
		unix.Close(fd)
		if err == nil && empty {
			return nil // the common case
		}
	}
	// Not empty, or not a folder (a link in its place is removed itself).
	if err := removeAllAt(s.fd, "out"); err != nil {
		return fmt.Errorf("%s: %w", s.dir, err)
	}
	if err := unix.Mkdirat(s.fd, "out", 0o755); err != nil {
		return &fs.PathError{Op: "mkdir", Path: s.out, Err: err}
	}
	return nil
}

// collect moves every regular file under the output folder into blobs as
// an artifact of task k named by its slash-separated path there; any other
// kind of file (a link, a device) fails it. It reads the folder the slot
// made, from the slot's descriptor, and fails if the task's path to it
// leads elsewhere now.
func (s *slot) collect(ctx context.Context, blobs *artifact.Store, k store.TaskKey) ([]store.Artifact, error) {
	if s.fd < 0 || !sameDir(s.dir, &s.st) {
		return nil, fmt.Errorf("the folder of BATON_OUTPUT_DIR, %s, %w: the task's outputs are not stored; leave the folders above BATON_OUTPUT_DIR as they are",
			s.dir, errSlotMoved)
	}
	fd, err := openDir(s.fd, "out")
	if err != nil {
		err = errors.Unwrap(err)
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, fmt.Errorf("BATON_OUTPUT_DIR, %s, was replaced with a link or a file (baton follows no link out of its folders): the task's outputs are not stored; write them in the folder as it is", s.out)
		}
		return nil, &fs.PathError{Op: "open", Path: s.out, Err: err}
	}
	c := collector{s: s, blobs: blobs, k: k, now: time.Now()}
	err = c.walk(ctx, fd, "", s.ents[:0])
	return c.arts, err
}

type collector struct {
	s     *slot
	blobs *artifact.Store
	k     store.TaskKey
	now   time.Time
	arts  []store.Artifact
}

// walk collects folder fd, which it closes, at path rel (ending in "/",
// or empty) of the output folder, reading its entries into ents, in the
// order filepath.WalkDir takes: by name, a folder's files where it comes.
func (c *collector) walk(ctx context.Context, fd int, rel string, ents []dirent) error {
	defer unix.Close(fd)
	ents, err := readDir(fd, c.s.buf, ents)
	if rel == "" {
		c.s.ents = ents[:0] // kept for the next task
	}
	if err != nil {
		return &fs.PathError{Op: "readdirent", Path: filepath.Join(c.s.out, rel), Err: err}
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	for _, e := range ents {
		name := rel + e.name
		typ := e.typ
		if typ == unix.DT_UNKNOWN {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return &fs.PathError{Op: "lstat", Path: filepath.Join(c.s.out, name), Err: err}
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				typ = unix.DT_DIR
			case unix.S_IFREG:
				typ = unix.DT_REG
			}
		}
		switch typ {
		case unix.DT_DIR:
			sub, err := openDir(fd, e.name)
			if err != nil {
				return &fs.PathError{Op: "open", Path: filepath.Join(c.s.out, name), Err: errors.Unwrap(err)}
			}
			if err := c.walk(ctx, sub, name+"/", nil); err != nil {
				return err
			}
		case unix.DT_REG:
			if err := artifact.ValidName(name); err != nil {
				return fmt.Errorf("output: %w", err)
			}
			digest, size, err := c.blobs.MoveFileAt(ctx, fd, e.name, filepath.Join(c.s.out, name))
			if err != nil {
				return fmt.Errorf("store output %s: %w", name, err)
			}
			c.arts = append(c.arts, store.Artifact{TaskKey: c.k, Name: name, Digest: digest, Size: size, CreatedAt: c.now})
		default:
			return fmt.Errorf("output %q is not a regular file (symlinks and devices are not artifacts)", filepath.FromSlash(name))
		}
	}
	return nil
}

// unlinkedTempAt returns a file made in folder dir, refusing a link in
// its place, and unlinked at once.
func unlinkedTempAt(dir int, name string) (*os.File, error) {
	for range 100 {
		n := name + "-" + strconv.FormatUint(rand.Uint64(), 36)
		fd, err := unix.Openat(dir, n, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "create", Path: n, Err: err}
		}
		if err := unix.Unlinkat(dir, n, 0); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "remove", Path: n, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	return nil, &fs.PathError{Op: "create", Path: name + "-*", Err: unix.EEXIST}
}
