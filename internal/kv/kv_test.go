package kv

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/fault"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		pairs []string
		want  map[string]string
	}{
		{"none", nil, map[string]string{}},
		{"one", []string{"a=1"}, map[string]string{"a": "1"}},
		{"value holds =", []string{"url=http://x/?a=b", "expr=a==b"}, map[string]string{"url": "http://x/?a=b", "expr": "a==b"}},
		{"empty value", []string{"a="}, map[string]string{"a": ""}},
		{"key trimmed, value kept", []string{" a = 1 ", "\tb=\t2"}, map[string]string{"a": " 1 ", "b": "\t2"}},
		{"value of spaces", []string{"msg=  "}, map[string]string{"msg": "  "}},
		{"unicode", []string{"ü=ö=ä"}, map[string]string{"ü": "ö=ä"}},
	} {
		got, err := Parse("--x", "K=V", c.pairs)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("%s: Parse(%q) = %q, %v; want %q", c.name, c.pairs, got, err, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		pairs []string
		is    error
		key   string
		msg   string
	}{
		{"no =", []string{"a=1", "b"}, ErrNoEquals, "", `--param "b": write NAME=VALUE`},
		{"empty", []string{""}, ErrNoEquals, "", `--param "": write NAME=VALUE`},
		{"empty key", []string{"=1"}, ErrEmptyKey, "", `--param "=1": write NAME=VALUE (the key is empty)`},
		{"blank key", []string{"  =1"}, ErrEmptyKey, "", `--param "  =1": write NAME=VALUE (the key is empty)`},
		{"duplicate", []string{"a=1", "b=2", "a=3"}, ErrDuplicate, "a", `--param: "a" given twice`},
		{"duplicate, same value", []string{"a=1", "a=1"}, ErrDuplicate, "a", `--param: "a" given twice`},
		{"duplicate after trimming", []string{"a=1", " a=2"}, ErrDuplicate, "a", `--param: "a" given twice`},
	} {
		got, err := Parse("--param", "NAME=VALUE", c.pairs)
		var e *Error
		if got != nil || !errors.As(err, &e) || !errors.Is(err, c.is) || !errors.Is(err, fault.Invalid) {
			t.Errorf("%s: Parse(%q) = %q, %v; want an *Error wrapping %v, invalid input", c.name, c.pairs, got, err, c.is)
			continue
		}
		if e.Where != "--param" || e.Key != c.key || err.Error() != c.msg {
			t.Errorf("%s: %q (where %q, key %q); want %q, key %q", c.name, err, e.Where, e.Key, c.msg, c.key)
		}
	}
}

// FuzzParse checks the rule on any pairs: Parse never panics; it accepts
// exactly the pairs that have an '=', a key that is not blank and no key
// twice; and what it returns is each pair cut at its first '='.
func FuzzParse(f *testing.F) {
	f.Add("a=1\nb=2")
	f.Add("a=1\na=1")
	f.Add("=x")
	f.Add("url=a=b\n x =y")
	f.Add("noequals")
	f.Fuzz(func(t *testing.T, in string) {
		pairs := strings.Split(in, "\n")
		got, err := Parse("--f", "K=V", pairs)
		seen := map[string]bool{}
		var wantErr error
		for _, p := range pairs {
			k, _, ok := strings.Cut(p, "=")
			k = strings.TrimSpace(k)
			switch {
			case !ok:
				wantErr = ErrNoEquals
			case k == "":
				wantErr = ErrEmptyKey
			case seen[k]:
				wantErr = ErrDuplicate
			}
			if wantErr != nil {
				break
			}
			seen[k] = true
		}
		if wantErr != nil {
			if !errors.Is(err, wantErr) || got != nil {
				t.Fatalf("Parse(%q) = %q, %v; want %v", pairs, got, err, wantErr)
			}
			return
		}
		if err != nil || len(got) != len(pairs) {
			t.Fatalf("Parse(%q) = %q, %v; want %d pairs", pairs, got, err, len(pairs))
		}
		for _, p := range pairs {
			i := strings.IndexByte(p, '=')
			if v, ok := got[strings.TrimSpace(p[:i])]; !ok || v != p[i+1:] {
				t.Fatalf("pair %q read as %q", p, v)
			}
		}
	})
}
