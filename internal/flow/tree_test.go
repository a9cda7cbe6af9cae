package flow

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/dur"
)

// TestDaysInFlowFiles: a flow file reads the same duration forms as every
// other file ("1d" too).
func TestDaysInFlowFiles(t *testing.T) {
	t.Parallel()
	f, err := Parse("f.yaml", []byte("name: x\nsteps:\n  - name: a\n    run: b\n    timeout: 1d12h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(f.Steps[0].Timeout); got != 36*time.Hour {
		t.Fatalf("timeout %v", got)
	}
}

// TestDecodeReportsEverything: Decode reports every problem of a document
// at once, each with its position and field path, and keeps decoding what
// it can.
func TestDecodeReportsEverything(t *testing.T) {
	t.Parallel()
	type item struct {
		Name  string            `yaml:"name"`
		N     int               `yaml:"n"`
		F     float64           `yaml:"f"`
		B     bool              `yaml:"b"`
		Tags  map[string]string `yaml:"tags"`
		Any   any               `yaml:"any"`
		Inner *struct {
			X []int `yaml:"x"`
		} `yaml:"inner"`
		Skip int `yaml:"-"`
	}
	var doc struct {
		Items []item `yaml:"items"`
	}
	loc, err := Decode("d.yaml", []byte(`items:
  - name: a
    n: 1.5
    f: x
    b: "yes"
    tags: [1]
    inner: {x: [1, two]}
    skip: 3
  - name: b
    n: 2
    any: {k: [1, true]}
`), &doc)
	var fe Errors
	if !errors.As(err, &fe) {
		t.Fatalf("got %T %v", err, err)
	}
	want := []string{
		`d.yaml:3:8: items[0].n: want a whole number, not 1.5`,
		`d.yaml:4:8: items[0].f: want a number, not the string "x"`,
		`d.yaml:5:8: items[0].b: want true or false, not the string "yes"`,
		`d.yaml:6:11: items[0].tags: want a mapping, not a list`,
		`d.yaml:7:20: items[0].inner.x[1]: want a whole number, not the string "two"`,
		`d.yaml:8:5: items[0].skip: unknown field "skip"`,
	}
	if len(fe) != len(want) {
		t.Fatalf("got %d problems:\n%v", len(fe), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(fe[i].Error(), w) {
			t.Errorf("problem %d: %q, want %q", i, fe[i].Error(), w)
		}
	}
	if len(doc.Items) != 2 || doc.Items[1].N != 2 || doc.Items[0].Inner == nil {
		t.Fatalf("what decoded: %+v", doc.Items)
	}
	// Problems found later are placed at their field.
	err = loc.Place(Errors{{Field: "items[1].n", Msg: "too small"}, {Field: "items[1].missing", Msg: "x"}})
	if err == nil || !strings.Contains(err.Error(), "d.yaml:10:8: items[1].n: too small") || !strings.Contains(err.Error(), "d.yaml:9:5: items[1].missing: x") {
		t.Fatalf("placed: %v", err)
	}
}

// FuzzDecode: any document (YAML or JSON, as API bodies are) decodes or
// is refused with Errors; nothing panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`[{"name": "a", "n": 1, "d": "1d", "at": "2026-11-28T10:00:00Z", "any": [1, {"k": null}], "m": {"x": {"f": 1.5}}}]`))
	f.Add([]byte("- &a {name: x, p: {n: 2}}\n- *a\n- <<: *a\n  name: y\n"))
	f.Add([]byte(`[{"name": 1, "n": "x", "m": [1], "p": 3}]`))
	type inner struct {
		F float64 `yaml:"f"`
	}
	type item struct {
		Name string           `yaml:"name"`
		N    int              `yaml:"n"`
		D    dur.Duration     `yaml:"d"`
		At   time.Time        `yaml:"at"`
		Any  any              `yaml:"any"`
		M    map[string]inner `yaml:"m"`
		P    *item            `yaml:"p"`
		B    *bool            `yaml:"b"`
		L    []float64        `yaml:"l"`
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out []item
		_, err := Decode("body", b, &out)
		var fe Errors
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("untyped error %T %v", err, err)
		}
	})
}

// TestDecodeRefusesNonFinite: NaN and infinities have no JSON form, so a
// spec holding one could be stored but never read back.
func TestDecodeRefusesNonFinite(t *testing.T) {
	t.Parallel()
	for _, text := range []string{".nan", ".NaN", ".inf", "-.Inf", "1e999"} {
		var doc struct {
			W   float64 `yaml:"w"`
			Any any     `yaml:"any"`
		}
		_, err := Decode("d.yaml", []byte("w: "+text+"\nany: {x: "+text+"}\n"), &doc)
		var fe Errors
		if !errors.As(err, &fe) || len(fe) != 2 {
			t.Fatalf("%s: got %v", text, err)
		}
		for i, field := range []string{"w", "any"} {
			if !strings.HasPrefix(fe[i].Field, field) || !strings.Contains(fe[i].Msg, "finite number") || fe[i].Line == 0 {
				t.Fatalf("%s: problem %d: %+v", text, i, fe[i])
			}
		}
	}
}

// TestCronEveryReadsDays: "@every 7d" reads as "7d" does everywhere else;
// a schedule's other forms are unchanged.
func TestCronEveryReadsDays(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for spec, next := range map[string]time.Time{
		"@every 7d":    at.Add(7 * 24 * time.Hour),
		"@every 1d12h": at.Add(36 * time.Hour),
		"@every 90s":   at.Add(90 * time.Second),
		"0 2 * * *":    at.Add(2 * time.Hour),
		"@hourly":      at.Add(time.Hour),
	} {
		s, err := ParseCron(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := s.Next(at); !got.Equal(next) {
			t.Errorf("%s: next %v, want %v", spec, got, next)
		}
	}
	if p := cronProblem("@every 7x"); p == "" {
		t.Error("@every 7x accepted")
	}
	if p := cronProblem("@every 500ms"); !strings.Contains(p, "too often") {
		t.Errorf("@every 500ms: %q", p)
	}
}

// TestStoredSpec: a stored spec decodes to its flow; a damaged one is an
// error naming the flow and version, never an empty flow.
func TestStoredSpec(t *testing.T) {
	t.Parallel()
	f, err := Stored("hello", 3, []byte(`{"name":"hello","steps":[{"name":"a","run":"true"}]}`))
	if err != nil || f.Name != "hello" || len(f.Steps) != 1 {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := Stored("hello", 3, []byte(`{"name":`)); err == nil || !strings.Contains(err.Error(), "flow hello version 3") {
		t.Fatalf("damaged: %v", err)
	}
}
