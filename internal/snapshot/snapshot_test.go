package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
)

// write makes files under dir: name -> content; a name ending in * is
// made executable (without the *).
func write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func pack(t testing.TB, dir string, opt Options) ([]byte, Packed) {
	t.Helper()
	var buf bytes.Buffer
	p, err := Pack(dir, &buf, opt)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	if int64(buf.Len()) != p.Size {
		t.Fatalf("Pack says %d bytes, wrote %d", p.Size, buf.Len())
	}
	return buf.Bytes(), p
}

// names lists a tar's entries as NAME MODE.
func names(t testing.TB, b []byte) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: time %v uid %d gid %d uname %q; want fixed", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
		out = append(out, h.Name+" "+h.FileInfo().Mode().String())
	}
}

func TestPackIsDeterministicAndContentAddressed(t *testing.T) {
	files := map[string]string{"flow.yaml": "name: a\n", "run.sh*": "echo hi\n", "lib/util.py": "x = 1\n", "lib/deep/z.txt": "z"}
	a, b := t.TempDir(), t.TempDir()
	write(t, a, files)
	write(t, b, files)
	// Other times and other permission bits than execute change nothing.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "flow.yaml"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "lib/util.py"), 0o600); err != nil {
		t.Fatal(err)
	}
	ba, pa := pack(t, a, Options{})
	bb, pb := pack(t, b, Options{})
	if pa.Digest != pb.Digest || !bytes.Equal(ba, bb) {
		t.Fatalf("same content in two folders: digests %s and %s", pa.Digest, pb.Digest)
	}
	want := []string{"flow.yaml -rw-r--r--", "lib/ drwxr-xr-x", "lib/deep/ drwxr-xr-x", "lib/deep/z.txt -rw-r--r--",
		"lib/util.py -rw-r--r--", "run.sh -rwxr-xr-x"}
	if got := names(t, ba); !slices.Equal(got, want) {
		t.Fatalf("entries %q; want %q", got, want)
	}
	if pa.Files != 4 || pa.Bytes != int64(len("name: a\n")+len("echo hi\n")+len("x = 1\n")+1) {
		t.Fatalf("counted %d files, %d bytes", pa.Files, pa.Bytes)
	}
	write(t, b, map[string]string{"run.sh*": "echo bye\n"})
	if _, p := pack(t, b, Options{}); p.Digest == pa.Digest {
		t.Fatal("an edited script kept the digest")
	}
	write(t, b, map[string]string{"run.sh*": "echo hi\n"})
	if err := os.Chmod(filepath.Join(b, "run.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, p := pack(t, b, Options{}); p.Digest == pa.Digest {
		t.Fatal("a script no longer executable kept the digest")
	}
}

func TestIgnoreMatch(t *testing.T) {
	ig, err := ParseIgnore(".batonignore", "# comment\n\n*.pyc\ndata/\n/build\ndocs/*.md\n**/tmp\nlogs/**\n!logs/keep.log\nsecret.txt  \n!important.pyc\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		dir  bool
		want bool
	}{
		{"a.pyc", false, true}, {"x/y/a.pyc", false, true}, {"important.pyc", false, false}, {"a.py", false, false},
		{"data", true, true}, {"x/data", true, true}, {"data", false, false}, // data/ matches folders only
		{"build", true, true}, {"build", false, true}, {"x/build", true, false}, // anchored
		{"docs/a.md", false, true}, {"docs/x/a.md", false, false}, {"x/docs/a.md", false, false},
		{"tmp", true, true}, {"a/b/tmp", false, true},
		{"logs", true, false}, {"logs/a.log", false, true}, {"logs/x/y", false, true}, {"logs/keep.log", false, false},
		{"secret.txt", false, true}, {"# comment", false, false},
		{".git", true, true}, {"sub/.git", true, true}, {".baton", true, true}, {".gitignore", false, false},
	} {
		if got := ig.Match(c.path, c.dir); got != c.want {
			t.Errorf("Match(%q, dir=%v) = %v; want %v", c.path, c.dir, got, c.want)
		}
	}
	for _, bad := range []string{"[", "a/../b", "/"} {
		if _, err := ParseIgnore("f", "ok\n"+bad+"\n"); err == nil || !strings.Contains(err.Error(), "f:2") {
			t.Errorf("pattern %q: err %v; want one naming line 2", bad, err)
		}
	}
	// The defaults can be taken back.
	ig, _ = ParseIgnore("f", "!.git/\n")
	if ig.Match(".git", true) {
		t.Error("!.git/ did not take .git back")
	}
}

func TestPackHonoursIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		".batonignore": "# build output\n*.pyc\ndata/\nsecret.txt\n", "flow.yaml": "f", "step.py": "p", "step.pyc": "c",
		"data/big.csv": "1,2", "sub/data/x": "x", "sub/keep.txt": "k", "secret.txt": "s", ".git/HEAD": "ref", ".baton/baton.db": "db",
	})
	b, _ := pack(t, dir, Options{})
	want := []string{".batonignore -rw-r--r--", "flow.yaml -rw-r--r--", "step.py -rw-r--r--", "sub/ drwxr-xr-x", "sub/keep.txt -rw-r--r--"}
	if got := names(t, b); !slices.Equal(got, want) {
		t.Fatalf("entries %q; want %q", got, want)
	}
	write(t, dir, map[string]string{".batonignore": "[bad\n"})
	if _, err := Pack(dir, io.Discard, Options{}); !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), ".batonignore:1") {
		t.Fatalf("bad pattern: %v; want an invalid-input error naming the line", err)
	}
}

func TestPackExcludesTheHome(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"flow.yaml": "f", "state/baton.db": "db", "state/artifacts/x": "x"})
	b, _ := pack(t, dir, Options{Exclude: []string{filepath.Join(dir, "state")}})
	if got := names(t, b); !slices.Equal(got, []string{"flow.yaml -rw-r--r--"}) {
		t.Fatalf("entries %q; want the home left out", got)
	}
}

func TestPackOverTheLimit(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"flow.yaml": "f", "model.bin": strings.Repeat("m", 600), "data/train.csv": strings.Repeat("d", 500), "x": "1"})
	var buf bytes.Buffer
	_, err := Pack(dir, &buf, Options{Limit: 1000, Hint: "raise it with --code-limit"})
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, fault.TooLarge) || fault.ExitCode(err) != 2 {
		t.Fatalf("Pack over the limit: %v; want a TooLargeError (exit 2)", err)
	}
	msg := err.Error()
	for _, s := range []string{"model.bin (600 bytes), data/train.csv (500 bytes)", "1000 bytes limit", ".batonignore", "--code-limit"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes of a snapshot it refused", buf.Len())
	}
	if _, err := Pack(dir, io.Discard, Options{Limit: 2000}); err != nil {
		t.Fatalf("under a raised limit: %v", err)
	}
}

func TestPackLinks(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, map[string]string{"secret": "s"})
	dir := t.TempDir()
	write(t, dir, map[string]string{"real.sh*": "echo real", "lib/a.txt": "a"})
	for link, target := range map[string]string{
		"copy.sh": "real.sh", "out": filepath.Join(outside, "secret"), "outdir": outside, "libdir": "lib",
		"dangling": "nothing-here", "climb": "../" + filepath.Base(outside) + "/secret", "self": ".",
		"loop1": "loop2", "loop2": "loop1",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	b, p := pack(t, dir, Options{})
	want := []string{"copy.sh -rwxr-xr-x", "lib/ drwxr-xr-x", "lib/a.txt -rw-r--r--", "real.sh -rwxr-xr-x"}
	if got := names(t, b); !slices.Equal(got, want) {
		t.Fatalf("entries %q; want %q", got, want)
	}
	got := map[string]string{}
	for _, s := range p.Skipped {
		got[s.Path] = s.Reason
	}
	for path, why := range map[string]string{"out": "out of the folder", "outdir": "out of the folder", "climb": "out of the folder",
		"libdir": "a link to a folder", "dangling": "to nothing", "self": "folder",
		"loop1": "cannot be followed (EvalSymlinks: too many links)", "loop2": "cannot be followed"} {
		if !strings.Contains(got[path], why) {
			t.Errorf("skipped %s: %q; want a reason saying %q (all: %v)", path, got[path], why, p.Skipped)
		}
	}
	// The link's copy is the target's content.
	tmp := t.TempDir()
	if err := Extract(bytes.NewReader(b), tmp, 1<<20); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(filepath.Join(tmp, "copy.sh")); string(c) != "echo real" {
		t.Fatalf("copy.sh holds %q", c)
	}
}

func TestExtractRoundTrip(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"flow.yaml": "f", "run.sh*": "#!/bin/sh\necho hi\n", "lib/deep/x.txt": "x", "empty/.keep": ""})
	b, _ := pack(t, dir, Options{})
	out := filepath.Join(t.TempDir(), "x")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Extract(bytes.NewReader(b), out, 1<<20); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	t.Cleanup(func() { _ = RemoveAll(out) })
	got := map[string]string{}
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(out, p)
		got[rel] = fi.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".": "drwxr-xr-x", "flow.yaml": "-r--r--r--", "run.sh": "-r-xr-xr-x", "lib": "drwxr-xr-x",
		"lib/deep": "drwxr-xr-x", "lib/deep/x.txt": "-r--r--r--", "empty": "drwxr-xr-x", "empty/.keep": "-r--r--r--"}
	if len(got) != len(want) {
		t.Fatalf("extracted %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: mode %s; want %s", k, got[k], v)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(out, "run.sh")); string(c) != "#!/bin/sh\necho hi\n" {
		t.Fatalf("run.sh holds %q", c)
	}
}

// tarOf writes entries (a header, then its content for a regular file).
func tarOf(t testing.TB, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		content := h.Linkname
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(content))
			h.Linkname = ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name, content string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Linkname: content}
}

// unsafeTars are archives Extract must refuse.
func unsafeTars(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"parent":        tarOf(t, reg("../evil", "x")),
		"parent inside": tarOf(t, reg("a/../../evil", "x")),
		"dot dot dir":   tarOf(t, &tar.Header{Name: "../d/", Typeflag: tar.TypeDir, Mode: 0o755}),
		"absolute":      tarOf(t, reg("/tmp/evil", "x")),
		"dot":           tarOf(t, reg("./a", "x")),
		"symlink":       tarOf(t, &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}),
		"symlink then write": tarOf(t, &tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777},
			reg("d/evil", "x")),
		"hard link":          tarOf(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}),
		"device":             tarOf(t, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}),
		"fifo":               tarOf(t, &tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o666}),
		"twice":              tarOf(t, reg("a", "one"), reg("a", "two")),
		"file then under it": tarOf(t, reg("a", "one"), reg("a/b", "two")),
		"over the limit":     tarOf(t, reg("big", strings.Repeat("x", 2000))),
		"backslash dots":     tarOf(t, reg("a/./b", "x")),
	}
}

func TestExtractRefusesUnsafeArchives(t *testing.T) {
	for name, b := range unsafeTars(t) {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Extract(bytes.NewReader(b), out, 1000)
			if err == nil {
				t.Fatal("Extract accepted it")
			}
			if name != "twice" && name != "file then under it" && !errors.Is(err, ErrUnsafe) {
				t.Errorf("err %v; want ErrUnsafe", err)
			}
			checkConfined(t, parent, out)
			_ = RemoveAll(out)
		})
	}
}

// checkConfined fails unless parent holds only out, and out only regular
// files and folders.
func checkConfined(t testing.TB, parent, out string) {
	t.Helper()
	des, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 || des[0].Name() != filepath.Base(out) {
		var ns []string
		for _, d := range des {
			ns = append(ns, d.Name())
		}
		t.Fatalf("Extract wrote beside its folder: %v", ns)
	}
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			t.Errorf("%s: extracted a %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzExtract(f *testing.F) {
	for _, b := range unsafeTars(f) {
		f.Add(b)
	}
	dir := f.TempDir()
	write(f, dir, map[string]string{"a.sh*": "x", "d/e/f.txt": "y"})
	b, _ := pack(f, dir, Options{})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = Extract(bytes.NewReader(b), out, 1<<16)
		checkConfined(t, parent, out)
		if err := RemoveAll(out); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCacheExtractsOncePerDigest(t *testing.T) {
	ctx := context.Background()
	blobs, err := artifact.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	write(t, src, map[string]string{"run.sh*": "echo v1"})
	b, p := pack(t, src, Options{})
	d, _, err := blobs.PutBytes(ctx, b)
	if err != nil || d != p.Digest {
		t.Fatalf("stored as %s (%v); Pack said %s", d, err, p.Digest)
	}
	home := t.TempDir()
	c := NewCache(filepath.Join(home, "code"), blobs)
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	errs := make([]error, 8)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = c.Dir(ctx, d, p.Size) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != filepath.Join(home, "code", d) {
			t.Fatalf("Dir: %q %v", dirs[i], errs[i])
		}
	}
	t.Cleanup(func() { _ = RemoveAll(filepath.Join(home, "code")) })
	if c, _ := os.ReadFile(filepath.Join(dirs[0], "run.sh")); string(c) != "echo v1" {
		t.Fatalf("run.sh holds %q", c)
	}
	// Another process's cache over the same folder uses the extraction.
	if got, err := NewCache(filepath.Join(home, "code"), blobs).Dir(ctx, d, p.Size); err != nil || got != dirs[0] {
		t.Fatalf("second cache: %q %v", got, err)
	}
	des, _ := os.ReadDir(filepath.Join(home, "code"))
	if len(des) != 1 {
		t.Fatalf("code folder holds %d entries; want the one snapshot, no temporary folders", len(des))
	}
	if _, err := c.Dir(ctx, "../../etc", 0); err == nil {
		t.Fatal("a digest that is a path was accepted")
	}
	if _, err := c.Dir(ctx, strings.Repeat("0", 64), 0); !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("a missing snapshot: %v; want ErrNotFound", err)
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]int64{"1000": 1000, "64MiB": 64 << 20, "64M": 64 << 20, "64mb": 64 << 20, "2G": 2 << 30, "512 KiB": 512 << 10} {
		if got, err := ParseLimit(in); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "12X", "MiB", "1.5M", "99999999999G"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

// tenMB makes a folder of 10 MB: 200 files of 50 KB in 10 subfolders.
func tenMB(b *testing.B) string {
	dir := b.TempDir()
	buf := make([]byte, 50_000)
	for i := range 200 {
		for j := range buf {
			buf[j] = byte(i*31 + j*7)
		}
		p := filepath.Join(dir, "d"+strconv.Itoa(i%10), "f"+strconv.Itoa(i)+".py")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkPack10MB packs a 10 MB folder of 200 files (what flow apply
// and run FILE add to registering it).
func BenchmarkPack10MB(b *testing.B) {
	dir := tenMB(b)
	b.SetBytes(10_000_000)
	for b.Loop() {
		if _, err := Pack(dir, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExtract10MB extracts that folder's snapshot from a local
// artifact store through the cache, as a worker's first task of a version
// does (its later tasks find the folder).
func BenchmarkExtract10MB(b *testing.B) {
	ctx := context.Background()
	blobs, err := artifact.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	p, err := Pack(tenMB(b), &buf, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := blobs.PutBytes(ctx, buf.Bytes()); err != nil {
		b.Fatal(err)
	}
	code := b.TempDir()
	b.SetBytes(10_000_000)
	for b.Loop() {
		c := NewCache(filepath.Join(code, "code"), blobs)
		if _, err := c.Dir(ctx, p.Digest, p.Size); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := RemoveAll(filepath.Join(code, "code")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestCacheRefusesACorruptBlob: a blob whose content is a well-formed
// snapshot but not the one its digest names (a replaced file in the
// store) is not used, and leaves no folder behind. Extract alone cannot
// tell: the digest is checked when the blob is read to its end.
func TestCacheRefusesACorruptBlob(t *testing.T) {
	ctx := context.Background()
	storeDir := t.TempDir()
	blobs, err := artifact.Open(ctx, storeDir)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	write(t, src, map[string]string{"run.sh*": "echo registered"})
	b, p := pack(t, src, Options{})
	if _, _, err := blobs.PutBytes(ctx, b); err != nil {
		t.Fatal(err)
	}
	write(t, src, map[string]string{"run.sh*": "echo forged!!!!"}) // same length
	forged, _ := pack(t, src, Options{})
	file := filepath.Join(storeDir, "sha256", p.Digest[:2], p.Digest)
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, forged, 0o444); err != nil {
		t.Fatal(err)
	}
	code := filepath.Join(t.TempDir(), "code")
	got, err := NewCache(code, blobs).Dir(ctx, p.Digest, p.Size)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Dir of a forged blob: %q, %v; want an error saying it is corrupt", got, err)
	}
	t.Cleanup(func() { _ = RemoveAll(code) })
	if des, _ := os.ReadDir(code); len(des) != 0 {
		t.Fatalf("the code folder holds %d entries after a refused blob; want none", len(des))
	}
}
