package main_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ARCHITECTURE.md's package table says, for every package of the module,
// which of the module's packages it imports. This keeps it true: the
// column must equal what `go list` reports (non-test imports), and every
// package must have a row.
func TestArchitectureMatchesImports(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/baton-ml/baton/"
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	want := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := short(strings.TrimPrefix(p.ImportPath, module))
		if name == "cmd/baton" {
			continue
		}
		deps := []string{}
		for _, imp := range p.Imports {
			if rest, ok := strings.CutPrefix(imp, module); ok {
				deps = append(deps, short(rest))
			}
		}
		slices.Sort(deps)
		want[name] = deps
	}

	got := readTable(t, filepath.Join(root, "ARCHITECTURE.md"))
	for name, deps := range want {
		doc, ok := got[name]
		if !ok {
			t.Errorf("ARCHITECTURE.md has no row for package `%s` (imports: %s)", name, list(deps))
			continue
		}
		if !slices.Equal(doc, deps) {
			t.Errorf("ARCHITECTURE.md says `%s` depends on %s; it imports %s", name, list(doc), list(deps))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("ARCHITECTURE.md has a row for `%s`, which is not a package of the module", name)
		}
	}
}

// short names a package as the table does: internal packages without
// "internal/".
func short(p string) string { return strings.TrimPrefix(p, "internal/") }

func list(deps []string) string {
	if len(deps) == 0 {
		return "nothing of the module"
	}
	return strings.Join(deps, ", ")
}

var code = regexp.MustCompile("`([^`]+)`")

// readTable reads the rows "| `pkg` | responsibility | `a`, `b` |" of the
// package table.
func readTable(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			t.Fatalf("ARCHITECTURE.md: row %q: want | package | responsibility | depends on |", line)
		}
		name := short(strings.Trim(strings.TrimSpace(cells[0]), "`"))
		deps := []string{}
		for _, m := range code.FindAllStringSubmatch(cells[len(cells)-1], -1) {
			deps = append(deps, short(m[1]))
		}
		slices.Sort(deps)
		rows[name] = deps
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("ARCHITECTURE.md: no package table under ## Packages")
	}
	return rows
}
