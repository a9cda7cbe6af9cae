package engine

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// newLogFile returns an unnamed file for a task's stdout or stderr. A memfd
// costs no folder entry to create and delete (~7µs against ~600µs for a
// named file on the disks baton is measured on; O_TMPFILE measured ~800µs
// under concurrency). The log lives in memory until the task ends and is
// stored as a blob.
func newLogFile(dir int, name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err == nil {
		return os.NewFile(uintptr(fd), name), nil
	}
	return unlinkedTempAt(dir, name)
}

// sysProcAttr puts a shell task in its own process group (so a timeout or
// Ctrl-C reaches everything it started) and has the kernel kill it if baton
// dies: a resumed run must not race an orphan of the dead one.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// fsTopdirFl is FS_TOPDIR_FL of linux/fs.h (chattr +T), which x/sys lacks.
const fsTopdirFl = 0x00020000

// spreadSubfolders marks dir as the top of unrelated folder trees, a hint
// ext2/3/4's inode allocator (Orlov) takes to place each new subfolder, and
// what is made below it, in an inode group with the fewest folders instead
// of beside its parent. Each process's scratch tree is such a tree: its
// join inputs are made and removed by the thousand, and without a journal
// ext4 has every new inode step over the group's recently deleted ones, one
// buffer look-up each. Beside the trees of the runs before, that was ~70%
// of making a join's inputs, and it slowed the shells' output files too.
// Other file systems refuse the flag, which changes nothing.
func spreadSubfolders(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFl != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
}
