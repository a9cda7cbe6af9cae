package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestVendoredChecksums: every vendored library embedded in the binary is
// the pinned release named in assets/SHA256SUMS (update.sh rewrites both),
// and nothing vendored is left unpinned.
func TestVendoredChecksums(t *testing.T) {
	sums, err := os.ReadFile("assets/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS:%d: %q: want SUM  NAME", i+1, line)
		}
		b, err := assetFS.ReadFile("assets/" + name)
		if err != nil {
			t.Fatalf("SHA256SUMS:%d: %s is not embedded: %v", i+1, name, err)
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS:%d: %s has sha256 %x, pinned %s: run assets/update.sh or restore the file", i+1, name, got, sum)
		}
		pinned[name] = true
	}
	ents, err := assetFS.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		// app.js, charts.js and style.css are baton's own; everything else is vendored.
		if n := e.Name(); n != "app.js" && n != "charts.js" && n != "style.css" && !pinned[n] {
			t.Errorf("assets/%s is embedded but not pinned in SHA256SUMS", n)
		}
	}
}

// assetBudget is the bound on what the UI weighs: every embedded
// script and style, compressed.
const assetBudget = 300 << 10

// TestAssetsSize: the embedded assets, each gzipped (as a browser would
// fetch them from a server or proxy that compresses), sum to under the
// budget. The sizes are logged for docs/ui.md.
func TestAssetsSize(t *testing.T) {
	ents, err := assetFS.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	raw, packed := 0, 0
	for _, e := range ents {
		b, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		var z bytes.Buffer
		w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-20s %7d bytes, %6d gzipped", e.Name(), len(b), z.Len())
		raw += len(b)
		packed += z.Len()
	}
	t.Logf("%d files: %d KB, %d KB gzipped (budget %d KB)", len(ents), raw>>10, packed>>10, assetBudget>>10)
	if len(ents) < 5 || packed == 0 {
		t.Fatalf("only %d embedded assets (%d bytes gzipped): the embed pattern lost files", len(ents), packed)
	}
	if packed > assetBudget {
		t.Errorf("the embedded assets weigh %d KB gzipped, over the budget of %d KB: shrink or drop one (see docs/ui.md)", packed>>10, assetBudget>>10)
	}
}
