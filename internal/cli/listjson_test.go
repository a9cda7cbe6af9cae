package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every list command prints [] under -o json when there is nothing to
// list, never null. The commands are found in the command tree (every
// "list", and "runs"), so a new one is checked without being named here;
// the filtered and per-run listings are added by hand.
func TestListCommandsPrintEmptyJSONList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	var lists [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			if sub.Name() == "list" || sub.Name() == "runs" {
				lists = append(lists, p)
			}
			walk(sub, p)
		}
	}
	walk((&app{}).root(), nil)
	if len(lists) < 8 {
		t.Fatalf("found only the list commands %q", lists)
	}
	lists = append(lists,
		[]string{"runs", "--flow", "nope"},
		[]string{"signal", "list", "--name", "nope"},
	)
	for _, args := range lists {
		code, out, stderr := runCLI(t, append(args, "--home", home, "-o", "json")...)
		if code != 0 || out != "[]\n" {
			t.Errorf("baton %s -o json on an empty home: exit %d, printed %q, want []\n%s", strings.Join(args, " "), code, out, stderr)
		}
	}

	// A run that left no artifact.
	fl := filepath.Join(dir, "quiet.yaml")
	if err := os.WriteFile(fl, []byte("name: quiet\nsteps:\n  - name: s\n    run: \"true\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, "run", fl, "--home", home, "--no-progress"); code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, args := range [][]string{{"artifact", "ls", "1"}, {"artifact", "ls", "1/s"}} {
		code, out, stderr := runCLI(t, append(args, "--home", home, "-o", "json")...)
		if code != 0 || out != "[]\n" {
			t.Errorf("baton %s -o json: exit %d, printed %q, want []\n%s", strings.Join(args, " "), code, out, stderr)
		}
	}
}
