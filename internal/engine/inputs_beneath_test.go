package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// linkedTree makes root/a/b/file, root/link (to outside, which holds a
// file named file) and root/a/lb (to b), and returns root open.
func linkedTree(t *testing.T) (root int, outside string) {
	t.Helper()
	dir, outside := t.TempDir(), t.TempDir()
	for _, err := range []error{
		os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755),
		os.WriteFile(filepath.Join(dir, "a", "b", "file"), []byte("in"), 0o644),
		os.WriteFile(filepath.Join(outside, "file"), []byte("out"), 0o644),
		os.Symlink(outside, filepath.Join(dir, "link")),
		os.Symlink("b", filepath.Join(dir, "a", "lb")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := openDir(unix.AT_FDCWD, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(root) })
	return root, outside
}

func isLinkRefused(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV)
}

// openBeneath follows no link, on the way or at the end, with openat2 and
// with the walk one name at a time that stands in for it on older kernels.
func TestOpenBeneathFollowsNoLink(t *testing.T) {
	for _, mode := range []string{"openat2", "walk"} {
		t.Run(mode, func(t *testing.T) {
			root, outside := linkedTree(t)
			in := &inputDir{}
			in.noOpenat2.Store(mode == "walk")
			fd, err := in.openBeneath(root, "a/b", dirFlags, 0)
			if err != nil {
				t.Fatalf("a real folder: %v", err)
			}
			unix.Close(fd)
			if mode == "openat2" && in.noOpenat2.Load() {
				t.Skip("this kernel, or its seccomp filter, refuses openat2: the walk is what runs here")
			}
			fd, err = in.openBeneath(root, "a/b/file", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("a real file: %v", err)
			}
			unix.Close(fd)
			for _, rel := range []string{"link", "link/file", "a/lb", "a/lb/file", "../x", "a/../../x"} {
				for _, flags := range []int{dirFlags, unix.O_RDONLY | unix.O_CLOEXEC} {
					fd, err := in.openBeneath(root, rel, flags, 0)
					if err == nil {
						unix.Close(fd)
						t.Errorf("%s (flags %#x) opened through a link or out of the root", rel, flags)
					} else if !isLinkRefused(err) && !errors.Is(err, unix.ENOENT) {
						t.Errorf("%s (flags %#x): %v, want a refused link", rel, flags, err)
					}
				}
			}
			create := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC
			if fd, err := in.openBeneath(root, "link/new", create, 0o444); err == nil {
				unix.Close(fd)
				t.Errorf("a file was made through a link")
			}
			if _, err := os.Lstat(filepath.Join(outside, "new")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the link's target holds a new file: %v", err)
			}
			fd, err = in.openBeneath(root, "a/b/new", create, 0o444)
			if err != nil {
				t.Fatalf("making a file in a real folder: %v", err)
			}
			unix.Close(fd)
			if mode == "walk" && !in.noOpenat2.Load() {
				t.Error("the walk turned openat2 back on")
			}
		})
	}
}

// removeAllAt removes a link, not what it points at.
func TestRemoveAllAtFollowsNoLink(t *testing.T) {
	root, outside := linkedTree(t)
	if err := removeAllAt(root, "a"); err != nil {
		t.Fatal(err)
	}
	if err := removeAllAt(root, "link"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "link"} {
		if err := unix.Fstatat(root, name, &unix.Stat_t{}, unix.AT_SYMLINK_NOFOLLOW); err != unix.ENOENT {
			t.Errorf("%s after removeAllAt: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "file")); err != nil || string(b) != "out" {
		t.Errorf("the link's target: %q %v", b, err)
	}
}

// The staging and drop folders are named at random, so a task cannot have
// a link waiting under the name.
func TestMkdirTempAtNames(t *testing.T) {
	root, _ := linkedTree(t)
	seen := map[string]bool{}
	for range 20 {
		name, fd, err := mkdirTempAt(root, ".fill-join-")
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if !strings.HasPrefix(name, ".fill-join-") || len(name) < len(".fill-join-")+8 || seen[name] {
			t.Errorf("staging folder name %q (seen before: %v)", name, seen[name])
		}
		seen[name] = true
	}
}
