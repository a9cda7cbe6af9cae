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
