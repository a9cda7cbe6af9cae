package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every KEY=VALUE flag reads its pairs by one rule (package kv): a key
// given twice is refused, naming the flag and the key, before anything is
// opened or run; so is a pair without '=' or with an empty key; a value
// may hold '='.
func TestKeyValueFlagsShareOneRule(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	for _, c := range []struct {
		name string
		args []string
		flag string
		pair string // a pair of the flag's form, for the other checks
	}{
		{"run --param", []string{"run", "flow.yaml", "--param"}, "--param", "a=1"},
		{"run --param-file", []string{"run", "flow.yaml", "--param-file"}, "--param-file", "a=f.json"},
		{"backfill --param", []string{"backfill", "flow", "--param"}, "--param", "a=1"},
		{"signal publish --param", []string{"signal", "publish", "s", "--param"}, "--param", "a=1"},
		{"model register --tag", []string{"model", "register", "m", "--artifact", "1/s/m", "--tag"}, "--tag", "a=1"},
		{"model register --metric", []string{"model", "register", "m", "--artifact", "1/s/m", "--metric"}, "--metric", "a=1"},
		{"model update --tag", []string{"model", "update", "m", "1", "--tag"}, "--tag", "a=1"},
		{"model update --metric", []string{"model", "update", "m", "1", "--metric"}, "--metric", "a=1"},
		{"exp assign --attr", []string{"exp", "assign", "e", "u1", "--attr"}, "--attr", "a=1"},
		{"exp analyze --covariate", []string{"exp", "analyze", "t.csv", "--control", "A", "--covariate"}, "--covariate", "a=pre"},
		{"feature training-set --key", []string{"feature", "training-set", "--labels", "l.csv", "--key"}, "--key", "a=col"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			key, _, _ := strings.Cut(c.pair, "=")
			for _, bad := range []struct {
				pairs []string
				want  string
			}{
				{[]string{c.pair, c.pair}, c.flag + `: "` + key + `" given twice`},
				{[]string{c.pair, " " + key + "=2"}, c.flag + `: "` + key + `" given twice`},
				{[]string{"novalue"}, c.flag + ` "novalue": write `},
				{[]string{"=1"}, c.flag + ` "=1": write `},
			} {
				args := append(slices.Clone(c.args[:len(c.args)-1]), "--home", home)
				for _, p := range bad.pairs {
					args = append(args, c.flag, p)
				}
				code, _, stderr := runCLI(t, args...)
				if code != 2 || !strings.Contains(stderr, bad.want) {
					t.Errorf("%q: exit %d, want 2 and %q:\n%s", args, code, bad.want, stderr)
				}
			}
		})
	}
	// The list of --weights follows the same rule.
	code, _, stderr := runCLI(t, "exp", "analyze", "t.csv", "--control", "A", "--weights", "A=0.5, B=0.25,A=0.25")
	if code != 2 || !strings.Contains(stderr, `--weights: "A" given twice`) {
		t.Errorf("--weights with a variant twice: exit %d:\n%s", code, stderr)
	}
}
