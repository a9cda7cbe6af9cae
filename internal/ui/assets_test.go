package ui

import (
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
