package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/engine"
)

const fsTopdirFl = 0x00020000 // FS_TOPDIR_FL, chattr +T

func inodeFlags(t *testing.T, dir string) (uint32, error) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
}

// The slots folder tells ext2/3/4's inode allocator that each process's
// scratch tree below it is a tree of its own, to be placed in an empty
// inode group rather than among the recently deleted inodes of the runs
// before (see spreadSubfolders).
func TestSlotsFolderSpreadsSubfolders(t *testing.T) {
	t.Parallel()
	probe := filepath.Join(t.TempDir(), "probe")
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Fatal(err)
	}
	flags, err := inodeFlags(t, probe)
	if err == nil {
		fd, _ := unix.Open(probe, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
		unix.Close(fd)
	}
	if err != nil {
		t.Skipf("this file system takes no top-folder hint: %v", err)
	}
	e := newEnv(t, engine.Options{})
	flags, err = inodeFlags(t, filepath.Join(e.dir, "tmp", "slots"))
	if err != nil || flags&fsTopdirFl == 0 {
		t.Fatalf("slots folder flags %#x (%v): want FS_TOPDIR_FL set", flags, err)
	}
}
