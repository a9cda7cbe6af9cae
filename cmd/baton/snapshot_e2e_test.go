package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// snapFlow is a flow whose steps run scripts of its folder: list lists
// the files its folder holds for tasks, and work reports the version of
// its script and library and the folder it runs in, failing while
// $SNAP_FAIL is set.
const snapFlow = `name: snap
steps:
  - name: list
    run: find . -type f | sort > "$BATON_OUTPUT_DIR/files.txt"
  - name: work
    needs: [list]
    run: ./work.sh
`

func writeSnapFolder(t *testing.T, dir, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "flow.yaml", snapFlow)
	writeFile(t, dir, "work.sh", `#!/bin/sh
. ./lib/common.sh
echo "script `+version+` lib $LIB" > "$BATON_OUTPUT_DIR/out.txt"
pwd > "$BATON_OUTPUT_DIR/pwd.txt"
test -z "$SNAP_FAIL"
`)
	if err := os.Chmod(filepath.Join(dir, "work.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "lib/common.sh", "LIB="+version+"\n")
}

type snapRun struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	FlowVersion int    `json:"flow_version"`
	Code        string `json:"code"`
	CodeSize    int64  `json:"code_size"`
}

func snapRunOf(t *testing.T, r result) snapRun {
	t.Helper()
	var run snapRun
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || run.ID == 0 {
		t.Fatalf("run -o json: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return run
}

func artifactText(t *testing.T, home string, env []string, path string) string {
	t.Helper()
	return strings.TrimSpace(must(t, batonEnv(t, home, env, "artifact", "get", path), 0).stdout)
}

func showRun(t *testing.T, home string, env []string, id int64) snapRun {
	t.Helper()
	return snapRunOf(t, must(t, batonEnv(t, home, env, "show", strconv.FormatInt(id, 10), "-o", "json"), 0))
}

// TestCodeSnapshots: a flow version holds a snapshot of its folder, and
// its tasks run in it: a resume runs the code of the run it resumes, not
// the folder's, an edited script makes a new version, and a run needs
// neither the folder nor the directory baton was started in.
func TestCodeSnapshots(t *testing.T) {
	t.Parallel()
	for storeName, envOf := range shapeStores(t) {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			env := envOf(t)
			home, dir := t.TempDir(), filepath.Join(t.TempDir(), "flows")
			writeSnapFolder(t, dir, "v1")
			writeFile(t, dir, ".batonignore", "# not code\ndata/\n*.log\n")
			if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "data/big.csv", "1,2,3\n")
			writeFile(t, dir, "debug.log", "noise\n")
			if err := os.Symlink("/etc/hostname", filepath.Join(dir, "host")); err != nil {
				t.Fatal(err)
			}
			flowFile := filepath.Join(dir, "flow.yaml")

			// v1 fails in work; then work.sh and its library change.
			r := batonEnv(t, home, append(env, "SNAP_FAIL=1"), "run", flowFile, "-o", "json")
			first := snapRunOf(t, must(t, r, 1))
			if !strings.Contains(r.stderr, "leaves out host: a link out of the folder") {
				t.Errorf("the link out of the folder left out silently: %s", r.stderr)
			}
			files := artifactText(t, home, env, strconv.FormatInt(first.ID, 10)+"/list/files.txt")
			if want := "./.batonignore\n./lib/common.sh\n./work.sh"; files != want {
				t.Fatalf("the snapshot holds\n%s\nwant\n%s (no data/, *.log, link out, or the flow file)", files, want)
			}
			writeSnapFolder(t, dir, "v2")

			// The resume runs v1's code, from the snapshot.
			res := snapRunOf(t, must(t, batonEnv(t, home, env, "resume", strconv.FormatInt(first.ID, 10), "-o", "json"), 0))
			if got := artifactText(t, home, env, strconv.FormatInt(res.ID, 10)+"/work/out.txt"); got != "script v1 lib v1" {
				t.Fatalf("the resume ran %q; want the registered code, script v1 lib v1", got)
			}
			v1 := showRun(t, home, env, res.ID)
			if v1.FlowVersion != 1 || len(v1.Code) != 64 || v1.CodeSize == 0 {
				t.Fatalf("resume: %+v; want version 1 with its code snapshot", v1)
			}
			// In the run's own copy of the snapshot extracted once in
			// HOME/code.
			if got := artifactText(t, home, env, strconv.FormatInt(res.ID, 10)+"/work/pwd.txt"); !strings.HasPrefix(got, filepath.Join(home, "tmp")) ||
				!strings.HasSuffix(got, filepath.Join("run-"+strconv.FormatInt(res.ID, 10), "code")) {
				t.Fatalf("the task ran in %s; want the run's copy of the snapshot", got)
			}
			if _, err := os.Stat(filepath.Join(home, "code", v1.Code)); err != nil {
				t.Fatalf("the snapshot was not extracted in HOME/code: %v", err)
			}

			// A new run of the edited file is a new version, running v2.
			second := snapRunOf(t, must(t, batonEnv(t, home, env, "run", flowFile, "-o", "json"), 0))
			if got := artifactText(t, home, env, strconv.FormatInt(second.ID, 10)+"/work/out.txt"); got != "script v2 lib v2" {
				t.Fatalf("the edited flow ran %q; want script v2 lib v2", got)
			}
			v2 := showRun(t, home, env, second.ID)
			if v2.FlowVersion != 2 || v2.Code == v1.Code || v2.Code == "" {
				t.Fatalf("edited: %+v; want version 2 with another snapshot than %s", v2, v1.Code)
			}
			vr := must(t, batonEnv(t, home, env, "flow", "show", "snap", "--versions", "-o", "json"), 0)
			var vs []snapRun
			if err := json.Unmarshal([]byte(vr.stdout), &vs); err != nil || len(vs) != 2 || vs[0].Code != v2.Code || vs[1].Code != v1.Code || vs[1].CodeSize != v1.CodeSize {
				t.Fatalf("flow show --versions: %v %s", err, vr.stdout)
			}
			if tx := must(t, batonEnv(t, home, env, "flow", "show", "snap", "--versions"), 0).stdout; !strings.Contains(tx, v2.Code[:12]) || !strings.Contains(tx, "CODE") {
				t.Fatalf("flow show --versions does not show the snapshot:\n%s", tx)
			}

			// The same content in another folder is the same version.
			moved := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.Rename(dir, moved); err != nil {
				t.Fatal(err)
			}
			if r := must(t, batonEnv(t, home, env, "flow", "apply", filepath.Join(moved, "flow.yaml")), 0); !strings.Contains(r.stdout, "v2 unchanged") {
				t.Fatalf("the same folder content from another path: %s", r.stdout)
			}

			// With the folder gone, and no extraction left on this
			// machine (another worker's case), a resume (running work
			// again) from another working directory still runs v2's
			// code, and so does a run by name.
			if err := os.RemoveAll(moved); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(home, "code")); err != nil {
				t.Fatal(err)
			}
			elsewhere := t.TempDir()
			res2 := snapRunOf(t, must(t, batonIn(t, home, elsewhere, env, "resume", strconv.FormatInt(second.ID, 10), "--from", "work", "-o", "json"), 0))
			if got := artifactText(t, home, env, strconv.FormatInt(res2.ID, 10)+"/work/out.txt"); got != "script v2 lib v2" {
				t.Fatalf("resume with the folder gone ran %q", got)
			}
			byName := snapRunOf(t, must(t, batonIn(t, home, elsewhere, env, "run", "snap", "-o", "json"), 0))
			if got := artifactText(t, home, env, strconv.FormatInt(byName.ID, 10)+"/work/out.txt"); got != "script v2 lib v2" {
				t.Fatalf("run by name with the folder gone ran %q", got)
			}
		})
	}
}

// TestCodeSnapshotLimit: a folder over the size limit registers nothing,
// with an error naming its biggest files and how to raise the limit.
func TestCodeSnapshotLimit(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	flowFile := writeFile(t, dir, "flow.yaml", "name: big\nsteps:\n  - name: a\n    run: wc -c model.bin > \"$BATON_OUTPUT_DIR/n.txt\"\n")
	writeFile(t, dir, "model.bin", strings.Repeat("m", 3<<20))
	writeFile(t, dir, "small.txt", "s")
	r := must(t, baton(t, home, "flow", "apply", flowFile, "--code-limit", "2MiB"), 2)
	for _, s := range []string{"model.bin (3 MiB)", "2 MiB limit", ".batonignore", "--code-limit", "BATON_CODE_LIMIT"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("over the limit, the error does not say %q: %s", s, r.stderr)
		}
	}
	if r := must(t, baton(t, home, "flow", "list", "-o", "json"), 0); strings.Contains(r.stdout, "big") {
		t.Fatalf("a flow over the limit was registered: %s", r.stdout)
	}
	// The default, 32 MiB, takes it; so does a raised limit.
	must(t, baton(t, home, "run", flowFile), 0)
	must(t, batonEnv(t, home, []string{"BATON_CODE_LIMIT=4MiB"}, "flow", "apply", flowFile), 0)
	writeFile(t, dir, ".batonignore", "*.bin\n")
	if r := must(t, baton(t, home, "flow", "apply", flowFile, "--code-limit", "2MiB"), 0); !strings.Contains(r.stdout, "v2 registered") {
		t.Fatalf("ignoring the big file: %s", r.stdout)
	}
	if r := must(t, baton(t, home, "flow", "apply", flowFile, "--code-limit", "lots"), 2); !strings.Contains(r.stderr, "--code-limit") {
		t.Fatalf("a bad limit: %s", r.stderr)
	}
}

// A task that changes its working folder (the snapshot's files are
// read-only, which does not stop root) changes it for its own run only:
// the next run of the version runs the registered code.
func TestCodeSnapshotTamperingStaysInItsRun(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "work.sh", "echo registered\n")
	flowFile := writeFile(t, dir, "tamper.yaml", `name: tamper
steps:
  - name: a
    run: |
      sh work.sh > "$BATON_OUTPUT_DIR/out.txt"
      chmod u+w work.sh . 2>/dev/null
      echo "echo tampered" > work.sh || true
      echo junk > left-behind.txt || true
`)
	must(t, baton(t, home, "run", flowFile), 0)
	must(t, baton(t, home, "run", "tamper"), 0)
	if got := strings.TrimSpace(must(t, baton(t, home, "artifact", "get", "2/a/out.txt"), 0).stdout); got != "registered" {
		t.Fatalf("the second run ran %q: a task of the first changed the code of the version", got)
	}
}
