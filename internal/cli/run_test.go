package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// A large JSON param given with --param-file reaches the task as a file;
// the run says so; bad files are refused before anything runs, naming the
// param.
func TestParamFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	fl := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(fl, []byte(`name: big
params:
  data: {type: json}
  n: {type: int, default: 1}
steps:
  - name: read
    run: |
      set -u
      wc -c < "$BATON_PARAM_FILE_DATA" | tr -d ' ' > "$BATON_OUTPUT_DIR/size"
      echo "$BATON_PARAM_N" > "$BATON_OUTPUT_DIR/n"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	big := `{"rows": "` + strings.Repeat("x", 189<<10) + `"}` + "\n"
	data := filepath.Join(dir, "data.json")
	n := filepath.Join(dir, "n.txt")
	os.WriteFile(data, []byte(big), 0o644)
	os.WriteFile(n, []byte("42\n"), 0o644)

	code, out, errs := runCLI(t, "run", fl, "--home", home, "--no-progress", "--param-file", "data="+data, "--param-file", "n="+n)
	if code != 0 || !strings.Contains(errs, "param data is 189 KiB, more than the environment takes (32 KiB a param, 256 KiB all params): shell tasks read it from the file named by $BATON_PARAM_FILE_DATA") {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errs)
	}
	// Canonical JSON: the space after the colon and the newline go.
	want := strconv.Itoa(len(big)-2) + "\n"
	if code, got, _ := runCLI(t, "artifact", "get", "1/read/size", "--home", home); code != 0 || got != want {
		t.Fatalf("size = %q, want %q", got, want)
	}
	if code, got, _ := runCLI(t, "artifact", "get", "1/read/n", "--home", home); code != 0 || got != "42\n" {
		t.Fatalf("n = %q", got)
	}

	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(huge, 5<<20)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--param-file", "data=" + filepath.Join(dir, "nope.json")}, "--param-file data=" + filepath.Join(dir, "nope.json") + ": stat"},
		{[]string{"--param-file", "data=" + huge}, "--param-file data=" + huge + ": the file is 5 MiB, over the 4 MiB limit of a param"},
		{[]string{"--param-file", "data=" + data, "--param", "data=[]"}, "param data is given with both --param and --param-file"},
		{[]string{"--param-file", "data"}, `--param-file "data": write NAME=VALUE`},
		{[]string{"--param-file", "nosuch=" + n, "--param", "data=1"}, `params.nosuch`},
	} {
		code, _, errs := runCLI(t, append([]string{"run", fl, "--home", home, "--no-progress"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("run %v: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errs)
		}
	}
	if code, out, _ := runCLI(t, "runs", "--home", home); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("the refused runs were stored:\n%s", out)
	}
}
