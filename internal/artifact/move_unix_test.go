//go:build unix

package artifact_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// MoveFileAt stores a file of an open folder and removes it there; a link
// in the file's place is refused, and neither it nor what it points at is
// stored, moved or changed.
func TestMoveFileAtFollowsNoLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			secret := filepath.Join(outside, "secret")
			for _, err := range []error{
				os.WriteFile(filepath.Join(dir, "f"), []byte("moved at"), 0o644),
				os.WriteFile(secret, []byte("keep me"), 0o600),
				os.Symlink(secret, filepath.Join(dir, "link")),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			d, n, err := s.MoveFileAt(ctx, fd, "f", "out/f")
			if err != nil || d != sum([]byte("moved at")) || n != 8 {
				t.Fatalf("MoveFileAt: %s %d %v", d, n, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "f")); !os.IsNotExist(err) {
				t.Errorf("MoveFileAt left the source: %v", err)
			}
			if b, err := s.Read(ctx, d); err != nil || string(b) != "moved at" {
				t.Errorf("the moved blob reads %q %v", b, err)
			}
			if _, _, err := s.MoveFileAt(ctx, fd, "link", "out/link"); !errors.Is(err, unix.ELOOP) {
				t.Errorf("MoveFileAt of a link: %v, want ELOOP", err)
			}
			if ok, _ := s.Exists(ctx, sum([]byte("keep me"))); ok {
				t.Error("the file behind the link was stored")
			}
			if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != secret {
				t.Errorf("the link is now %q %v", target, err)
			}
			if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the file behind the link: %v %v, want it as it was (0600)", fi, err)
			}
		})
	}
}

// A file with another name elsewhere (a hard link a task made to a file
// of the user's, to output it without a copy) is copied into the store:
// the other name keeps its mode and stays a file of its own, and writing
// to it later does not change the stored blob.
func TestMoveFileAtCopiesAHardLinkedFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			data := filepath.Join(outside, "data.csv")
			if err := os.WriteFile(data, []byte("a,b\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(data, filepath.Join(dir, "data.csv")); err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			d, n, err := s.MoveFileAt(ctx, fd, "data.csv", "out/data.csv")
			if err != nil || d != sum([]byte("a,b\n")) || n != 4 {
				t.Fatalf("MoveFileAt: %s %d %v", d, n, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "data.csv")); !os.IsNotExist(err) {
				t.Errorf("MoveFileAt left the source: %v", err)
			}
			var st unix.Stat_t
			if err := unix.Stat(data, &st); err != nil || st.Mode&0o777 != 0o644 || st.Nlink != 1 {
				t.Errorf("the file of the other name: mode %o, %d names (%v), want 644 and 1: it is shared with the store", st.Mode&0o777, st.Nlink, err)
			}
			f, err := os.OpenFile(data, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString("c,d\n")
				f.Close()
			}
			if err != nil {
				t.Fatalf("append to the file of the other name: %v", err)
			}
			if b, err := s.Read(ctx, d); err != nil || string(b) != "a,b\n" {
				t.Errorf("the stored blob reads %q %v, want it as stored", b, err)
			}
		})
	}
}
