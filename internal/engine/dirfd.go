package engine

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Baton's folders in its scratch tree (a run's scratch folder and the
// inputs in it, a worker slot and its output folder) are opened once and
// reached from their descriptors one name at a time, never through a link:
// tasks run as baton's user and may put a link anywhere in that tree.

// dirFlags open a folder, never through a link.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

func openDir(at int, path string) (int, error) {
	for {
		fd, err := unix.Openat(at, path, dirFlags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// sameDir reports whether path, resolved as a task resolves it (links
// followed on the way, not the last name), is the folder whose fstat is
// st: if not, a task replaced it or a folder above it.
func sameDir(path string, st *unix.Stat_t) bool {
	var now unix.Stat_t
	for {
		err := unix.Fstatat(unix.AT_FDCWD, path, &now, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		return err == nil && now.Dev == st.Dev && now.Ino == st.Ino
	}
}

// removeAllAt removes name from folder dir and, if it is a folder,
// everything in it, following no link: a link is removed itself.
func removeAllAt(dir int, name string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return &fs.PathError{Op: "unlink", Path: name, Err: err}
	}
	fd, err := openDir(dir, name)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	names, rerr := f.Readdirnames(-1)
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil && rerr == nil {
			rerr = err
		}
	}
	f.Close()
	if err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return errors.Join(rerr, &fs.PathError{Op: "rmdir", Path: name, Err: err})
	}
	return rerr
}
