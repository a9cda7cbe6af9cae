//go:build unix

package artifact

import (
	"io"
	"io/fs"
	"syscall"
)

// rawFile reads a file through its descriptor alone. os.Open registers
// every file with the runtime's poller (four fcntl calls and a refused
// epoll_ctl on Linux), which costs more than reading a blob of a few bytes.
type rawFile int

func openRaw(path string) (rawReader, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return rawFile(fd), nil
	}
}

func (f rawFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFile) Seek(offset int64, whence int) (int64, error) {
	return syscall.Seek(int(f), offset, whence)
}

func (f rawFile) Chmod(mode fs.FileMode) error {
	for {
		err := syscall.Fchmod(int(f), uint32(mode.Perm()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// links is the file's number of names.
func (f rawFile) links() (uint64, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Fstat(int(f), &st)
		if err != syscall.EINTR {
			return uint64(st.Nlink), err
		}
	}
}

func (f rawFile) Close() error { return syscall.Close(int(f)) }
