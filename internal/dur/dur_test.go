package dur

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"500ms", 500 * time.Millisecond}, {"90s", 90 * time.Second}, {"5m", 5 * time.Minute},
		{"1h", time.Hour}, {"7d", 7 * Day}, {"1d12h", 36 * time.Hour}, {"1h30m", 90 * time.Minute},
		{"1m0s", time.Minute}, {"168h0m0s", 7 * Day}, {"0s", 0}, {"1.5s", 1500 * time.Millisecond}, {"250us", 250 * time.Microsecond},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "soon", "5", "d", "-1d", "1d-1h", "7days", "1.5d", "1x"} {
		if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v, want ErrSyntax", in, err)
		}
	}
}

// TestStringRoundTrip: what the API writes is readable and reads back to
// the same value.
func TestStringRoundTrip(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "1s"}, {7 * Day, "7d"}, {time.Minute, "1m"}, {90 * time.Minute, "1h30m"},
		{36 * time.Hour, "1d12h"}, {250 * time.Millisecond, "250ms"}, {61500 * time.Millisecond, "1m1.5s"},
		{0, "0s"}, {-5 * time.Second, "-5s"},
	} {
		s := Duration(c.d).String()
		if s != c.want {
			t.Errorf("String(%v) = %q, want %q", c.d, s, c.want)
		}
		back, err := Parse(s)
		if err != nil || back != c.d {
			t.Errorf("Parse(String(%v)) = %v, %v", c.d, back, err)
		}
	}
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal(struct{ SLA Duration }{Duration(time.Second)})
	if err != nil || string(b) != `{"SLA":"1s"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var v struct{ SLA Duration }
	if err := json.Unmarshal([]byte(`{"SLA":"7d"}`), &v); err != nil || v.SLA.D() != 7*Day {
		t.Fatalf("unmarshal: %v %v", v.SLA, err)
	}
	if err := json.Unmarshal([]byte(`{"SLA":1000000000}`), &v); !errors.Is(err, ErrSyntax) {
		t.Fatalf("a number is refused: %v", err)
	}
}

func TestYAML(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`7d`: 7 * Day, `"90s"`: 90 * time.Second, `'1h'`: time.Hour} {
		if err := d.UnmarshalYAML([]byte(in)); err != nil || d.D() != want {
			t.Errorf("UnmarshalYAML(%s) = %v, %v", in, d, err)
		}
	}
}
