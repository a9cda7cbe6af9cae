package engine

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirent is a folder entry as the folder records it: its name and type
// (unix.DT_*; DT_UNKNOWN where the file system does not say).
type dirent struct {
	name string
	typ  uint8
}

// direntBufSize holds the largest entry several times over: os.ReadDir
// reads with a buffer of this size too.
const direntBufSize = 8 << 10

// readDir appends the entries of open folder fd, read from where fd is
// (its start when just opened), to ents, "." and ".." left out; buf is
// direntBufSize bytes. os.File would cost a registration with the
// runtime's poller per folder, more than reading a folder of one file.
func readDir(fd int, buf []byte, ents []dirent) ([]dirent, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ents, err
		}
		if n <= 0 {
			return ents, nil
		}
		ents = parseDirents(buf[:n], ents)
	}
}

// dirEmpty reports whether open folder fd, just opened, has no entry but
// "." and "..".
func dirEmpty(fd int, buf []byte) (bool, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return err == nil, err
		}
		if len(parseDirents(buf[:n], nil)) > 0 {
			return false, nil
		}
	}
}

// parseDirents appends the entries of buf, as getdents64 fills it (struct
// linux_dirent64: ino, off, reclen, type, name ending in NUL), to ents.
func parseDirents(buf []byte, ents []dirent) []dirent {
	const nameOff = int(unsafe.Offsetof(unix.Dirent{}.Name))
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[unsafe.Offsetof(unix.Dirent{}.Reclen):]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		rec := buf[:reclen]
		buf = buf[reclen:]
		if binary.NativeEndian.Uint64(rec) == 0 { // an entry removed under the reader
			continue
		}
		name := rec[nameOff:]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if string(name) != "." && string(name) != ".." { // compared without a copy
			ents = append(ents, dirent{name: string(name), typ: rec[unsafe.Offsetof(unix.Dirent{}.Type)]})
		}
	}
	return ents
}
