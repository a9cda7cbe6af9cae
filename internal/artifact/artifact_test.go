package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/artifact"
)

func stores(t *testing.T) map[string]*artifact.Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*artifact.Store{}
	for name, url := range map[string]string{
		"file": "file://" + filepath.Join(t.TempDir(), "blobs"),
		"path": filepath.Join(t.TempDir(), "plain"),
		"mem":  "mem://",
	} {
		s, err := artifact.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[name] = s
	}
	return out
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestPutReadDedupe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			data := []byte("hello, artifacts")
			d, n, err := s.PutBytes(ctx, data)
			if err != nil || d != sum(data) || n != int64(len(data)) {
				t.Fatalf("PutBytes: %s %d %v", d, n, err)
			}
			// The same content from a file and from a move is the same blob.
			p := filepath.Join(t.TempDir(), "f")
			os.WriteFile(p, data, 0o644)
			if d2, _, err := s.PutFile(ctx, p); err != nil || d2 != d {
				t.Fatalf("PutFile: %s %v", d2, err)
			}
			if d3, _, err := s.MoveFile(ctx, p); err != nil || d3 != d {
				t.Fatalf("MoveFile: %s %v", d3, err)
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("MoveFile left the source: %v", err)
			}
			got, err := s.Read(ctx, d)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Read: %q %v", got, err)
			}
			if ok, _ := s.Exists(ctx, d); !ok {
				t.Fatal("Exists = false")
			}
			// A moved file with new content lands under its own digest.
			q := filepath.Join(t.TempDir(), "g")
			os.WriteFile(q, []byte("other"), 0o644)
			d4, _, err := s.MoveFile(ctx, q)
			if err != nil || d4 != sum([]byte("other")) {
				t.Fatalf("MoveFile new content: %s %v", d4, err)
			}
			if b, _ := s.Read(ctx, d4); string(b) != "other" {
				t.Fatalf("moved blob reads %q", b)
			}
			dst := filepath.Join(t.TempDir(), "sub", "out")
			if err := s.WriteFile(ctx, d, dst, 0o444); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(dst); !bytes.Equal(b, data) {
				t.Fatalf("WriteFile wrote %q", b)
			}
		})
	}
}

func TestMissingAndInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := stores(t)["file"]
	if _, err := s.Read(ctx, sum([]byte("never stored"))); !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("missing blob: %v, want ErrNotFound", err)
	}
	if _, err := s.Read(ctx, "../../etc/passwd"); err == nil || !strings.Contains(err.Error(), "not a SHA-256") {
		t.Fatalf("invalid digest: %v", err)
	}
}

func TestCorruptionDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := artifact.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, _, err := s.PutBytes(ctx, []byte("original"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sha256", d[:2], d)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, artifact.ErrCorrupt) {
		t.Fatalf("reading a tampered blob: %v, want a corruption error", err)
	}
}

// CopyTo hands over a blob's exact bytes from every kind of store, says
// which blob is missing, and refuses a local blob whose content was
// changed behind the store's back (it reads the file directly, not through
// the bucket's verifying reader).
func TestCopyTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // past one copy buffer
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, data := range [][]byte{[]byte("tiny"), {}, big} {
				d, _, err := s.PutBytes(ctx, data)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				n, err := s.CopyTo(ctx, d, &got)
				if err != nil || n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("CopyTo of %d bytes: %d bytes, equal %v, %v", len(data), n, bytes.Equal(got.Bytes(), data), err)
				}
			}
			if _, err := s.CopyTo(ctx, sum([]byte("never stored")), io.Discard); !errors.Is(err, artifact.ErrNotFound) {
				t.Fatalf("missing blob: %v, want ErrNotFound", err)
			}
			if _, err := s.CopyTo(ctx, "../../etc/passwd", io.Discard); err == nil || !strings.Contains(err.Error(), "not a SHA-256") {
				t.Fatalf("invalid digest: %v", err)
			}
		})
	}
	dir := t.TempDir()
	s, err := artifact.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, _, err := s.PutBytes(ctx, []byte("original"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sha256", d[:2], d)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CopyTo(ctx, d, io.Discard); !errors.Is(err, artifact.ErrCorrupt) {
		t.Fatalf("copying a tampered blob: %v, want a corruption error", err)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	good := []string{"a", "model.bin", "dir/sub/file.txt", "weird name with spaces", "ünïcode"}
	bad := map[string]string{
		"":          "empty",
		"/etc/x":    "absolute",
		"../x":      `".."`,
		"a/../b":    `".."`,
		"a/./b":     `"."`,
		"a//b":      "empty path segment",
		"a\\b":      "backslash",
		"a\nb":      "control",
		"\xff":      "UTF-8",
		"trailing/": "empty path segment",
	}
	for _, n := range good {
		if err := artifact.ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	for n, want := range bad {
		if err := artifact.ValidName(n); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidName(%q) = %v, want an error mentioning %s", n, err, want)
		}
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	p, err := artifact.ParsePath("12/train/models/final.bin")
	if err != nil || p.RunID != 12 || p.Step != "train" || p.Rest != "models/final.bin" {
		t.Fatalf("ParsePath: %+v %v", p, err)
	}
	for _, bad := range []string{"", "12", "12/train", "12/train/", "x/train/a", "-1/a/b", "12/../x", "12/a/../../b", "12/a//etc"} {
		if _, err := artifact.ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) accepted", bad)
		}
	}
}
