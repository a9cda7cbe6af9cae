// Package dur is the one duration type of every baton file and API body:
// it reads Go's forms ("1h30m", "500ms") plus whole days ("7d", "1d12h"),
// and writes the shortest of those forms ("1s", "7d", "1h30m"), never Go
// nanoseconds, so what the API returns can be sent back as it is.
package dur

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "500ms", "90s", "5m", "1h" or "7d".
type Duration time.Duration

// Day is the unit of the "d" suffix: 24 hours (baton has no calendar days).
const Day = 24 * time.Hour

// ErrSyntax is wrapped by every parse error, so callers tell a bad duration
// apart with errors.Is.
var ErrSyntax = errors.New("not a duration")

// Hint lists the accepted forms, for messages.
const Hint = "500ms, 90s, 5m, 1h or 7d"

// Parse reads a duration: Go's forms, optionally after a whole number of
// days ("7d", "1d12h").
func Parse(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%w such as %s (got %q)", ErrSyntax, Hint, s)
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return bad()
	}
	var days int64
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n < 0 || n > int64(106751) { // time.Duration's range
			return bad()
		}
		days, t = n, t[i+1:]
		if t == "" {
			return time.Duration(days) * Day, nil
		}
		if t[0] == '-' || t[0] == '+' {
			return bad()
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return bad()
	}
	if days > 0 {
		if d < 0 {
			return bad()
		}
		total := time.Duration(days)*Day + d
		if total < d {
			return bad()
		}
		d = total
	}
	return d, nil
}

// String writes the shortest readable form: "0s", "1s", "1h30m", "7d",
// "1d12h", "250ms", "1.5s".
func (d Duration) String() string {
	v := time.Duration(d)
	if v == 0 {
		return "0s"
	}
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
		if v == time.Duration(-1<<63) {
			return time.Duration(v).String()
		}
		v = -v
	}
	if n := v / Day; n > 0 {
		b.WriteString(strconv.FormatInt(int64(n), 10) + "d")
		v -= n * Day
	}
	if n := v / time.Hour; n > 0 {
		b.WriteString(strconv.FormatInt(int64(n), 10) + "h")
		v -= n * time.Hour
	}
	if n := v / time.Minute; n > 0 {
		b.WriteString(strconv.FormatInt(int64(n), 10) + "m")
		v -= n * time.Minute
	}
	if v > 0 {
		// Go's own form for what is under a minute: "30s", "1.5s", "250ms".
		b.WriteString(v.String())
	}
	return b.String()
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads any form Parse reads.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string such as "1s" or "7d".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; a number is refused, since a bare
// number has no unit a reader could trust.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: want a string such as %s, got %s", ErrSyntax, Hint, abbrev(string(b)))
	}
	return d.UnmarshalText([]byte(s))
}

// UnmarshalYAML reads a duration string (goccy/go-yaml's BytesUnmarshaler).
func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"') {
		u, err := strconv.Unquote(s)
		if err == nil {
			s = u
		}
	} else if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	return d.UnmarshalText([]byte(s))
}

func abbrev(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}
