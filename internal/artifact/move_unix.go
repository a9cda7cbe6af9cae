//go:build unix

package artifact

import (
	"context"
	"io/fs"

	"golang.org/x/sys/unix"
)

// MoveFileAt is MoveFile of the file name in folder dir, an open
// descriptor, named path in errors. Neither opening, renaming nor
// removing it follows a link: a link in its place fails the opening. The
// caller, having reached dir following no link, knows the file it stores
// is in that folder, whatever a process did to the folders above it.
func (s *Store) MoveFileAt(ctx context.Context, dir int, name, path string) (string, int64, error) {
	return s.move(ctx, atSource{dir: dir, name: name, path: path}, path)
}

type atSource struct {
	dir        int
	name, path string
}

func (a atSource) open() (rawReader, error) {
	// O_NONBLOCK: a FIFO put in the file's place is not waited on.
	for {
		fd, err := unix.Openat(a.dir, a.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: a.path, Err: err}
		}
		return rawFile(fd), nil
	}
}

func (a atSource) rename(final string) error {
	if err := unix.Renameat(a.dir, a.name, unix.AT_FDCWD, final); err != nil {
		return &fs.PathError{Op: "rename", Path: a.path, Err: err}
	}
	return nil
}

func (a atSource) remove() error {
	if err := unix.Unlinkat(a.dir, a.name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: a.path, Err: err}
	}
	return nil
}
