package search

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/csvtable"
	"github.com/baton-ml/baton/internal/fault"
)

// Title is one row of a catalog file:
//
//	title,name,genres,creator,new_creator,released[,markets][,description]
//
// genres and markets are separated by "|", new_creator is true or false,
// released is RFC 3339 or Unix seconds. It is the catalog format of the
// recommendation models too, so that one file feeds both.
type Title struct {
	ID          string    `json:"title"`
	Name        string    `json:"name"`
	Genres      []string  `json:"genres"`
	Creator     string    `json:"creator"`
	NewCreator  bool      `json:"new_creator"`
	Released    time.Time `json:"released"`
	Markets     []string  `json:"markets,omitempty"`
	Description string    `json:"description,omitempty"`
}

// Interaction is one row of an interactions file (member,title,ts,...):
// a member played a title. Further columns are allowed and not read.
type Interaction struct {
	Member string
	Title  string
	TS     time.Time
}

// Click is one row of a click log (member,query,title,clicked[,position]):
// title was shown to member for query, and clicked or not. Position, from
// 1, is 0 when the log has none.
type Click struct {
	Member   string
	Query    string
	Title    string
	Clicked  bool
	Position int
}

// table reads a CSV table with csvtable's rules, requiring the columns of
// need and allowing those of may; each record is handed to row with a
// getter by column name ("" for an absent optional column).
func table(r io.Reader, name string, need, may []string, row func(get func(string) string, line int) error) error {
	tr := csvtable.NewReader(r, name)
	header, hline, err := tr.Header()
	if errors.Is(err, io.EOF) {
		return &csvtable.InputError{File: name, Err: fmt.Errorf("empty file: the header must have %s", strings.Join(need, ","))}
	}
	if err != nil {
		return err
	}
	pos := map[string]int{}
	for i, h := range header {
		pos[h] = i
	}
	for _, n := range need {
		if _, ok := pos[n]; !ok {
			return &csvtable.InputError{File: name, Line: hline, Err: fmt.Errorf("no column %q; the header must have %s", n, strings.Join(need, ","))}
		}
	}
	known := map[string]bool{}
	for _, n := range append(append([]string{}, need...), may...) {
		known[n] = true
	}
	var fields [][]byte
	get := func(col string) string {
		i, ok := pos[col]
		if !ok || !known[col] {
			return ""
		}
		return string(fields[i])
	}
	for {
		f, line, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fields = f
		if err := row(get, line); err != nil {
			return err
		}
	}
}

func cellErr(file string, line int, col string, format string, args ...any) error {
	return &csvtable.InputError{File: file, Line: line, Column: col, Err: fmt.Errorf(format, args...)}
}

// parseTime reads RFC 3339 or Unix seconds.
func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= -62135596800 && n <= 253402300799 {
		return time.Unix(n, 0).UTC(), true
	}
	return time.Time{}, false
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ReadCatalog reads a catalog file; name names it in errors. A title
// twice, an empty id or name, a bad boolean or time is an error naming
// the line and column.
func ReadCatalog(r io.Reader, name string) ([]Title, error) {
	var out []Title
	seen := map[string]int{}
	err := table(r, name, []string{"title", "name", "genres", "creator", "new_creator", "released"}, []string{"markets", "description"},
		func(get func(string) string, line int) error {
			t := Title{ID: get("title"), Name: get("name"), Genres: splitList(get("genres")), Creator: get("creator"),
				Markets: splitList(get("markets")), Description: get("description")}
			if t.ID == "" {
				return cellErr(name, line, "title", "empty title id")
			}
			if prev, ok := seen[t.ID]; ok {
				return cellErr(name, line, "title", "title %q is also on line %d", t.ID, prev)
			}
			seen[t.ID] = line
			if t.Name == "" {
				return cellErr(name, line, "name", "empty name")
			}
			nc, err := strconv.ParseBool(get("new_creator"))
			if err != nil {
				return cellErr(name, line, "new_creator", "%q is not true or false", get("new_creator"))
			}
			t.NewCreator = nc
			rel, ok := parseTime(get("released"))
			if !ok {
				return cellErr(name, line, "released", "%q is neither RFC 3339 nor Unix seconds", get("released"))
			}
			t.Released = rel
			out = append(out, t)
			return nil
		})
	return out, err
}

// ReadInteractions reads an interactions file (member,title,ts,...).
func ReadInteractions(r io.Reader, name string) ([]Interaction, error) {
	var out []Interaction
	err := table(r, name, []string{"member", "title", "ts"}, nil, func(get func(string) string, line int) error {
		it := Interaction{Member: get("member"), Title: get("title")}
		if it.Member == "" {
			return cellErr(name, line, "member", "empty member")
		}
		if it.Title == "" {
			return cellErr(name, line, "title", "empty title")
		}
		ts, ok := parseTime(get("ts"))
		if !ok {
			return cellErr(name, line, "ts", "%q is neither RFC 3339 nor Unix seconds", get("ts"))
		}
		it.TS = ts
		out = append(out, it)
		return nil
	})
	return out, err
}

// ReadClicks reads a click log (member,query,title,clicked[,position]).
// clicked is true/false or 1/0; position, when there, a whole number ≥ 1.
func ReadClicks(r io.Reader, name string) ([]Click, error) {
	var out []Click
	err := table(r, name, []string{"member", "query", "title", "clicked"}, []string{"position"}, func(get func(string) string, line int) error {
		c := Click{Member: get("member"), Query: get("query"), Title: get("title")}
		if c.Query == "" {
			return cellErr(name, line, "query", "empty query")
		}
		if c.Title == "" {
			return cellErr(name, line, "title", "empty title")
		}
		b, err := strconv.ParseBool(get("clicked"))
		if err != nil {
			return cellErr(name, line, "clicked", "%q is not true/false or 1/0", get("clicked"))
		}
		c.Clicked = b
		if p := get("position"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 {
				return cellErr(name, line, "position", "%q is not a whole number from 1", p)
			}
			c.Position = n
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// ReadFile opens path and reads it with read; a missing file is invalid
// input naming the path.
func ReadFile[T any](path string, read func(io.Reader, string) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fault.Wrap(fault.Invalid, err)
	}
	defer f.Close()
	return read(f, path)
}

// WriteCatalog writes titles in the catalog format (markets and
// description columns always).
func WriteCatalog(w io.Writer, titles []Title) error {
	var b bytes.Buffer
	b.WriteString("title,name,genres,creator,new_creator,released,markets,description\n")
	for _, t := range titles {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%t,%s,%s,%s\n", csvField(t.ID), csvField(t.Name), csvField(strings.Join(t.Genres, "|")),
			csvField(t.Creator), t.NewCreator, t.Released.UTC().Format(time.RFC3339), csvField(strings.Join(t.Markets, "|")), csvField(t.Description))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteInteractions writes member,title,ts (Unix seconds).
func WriteInteractions(w io.Writer, its []Interaction) error {
	var b bytes.Buffer
	b.WriteString("member,title,ts\n")
	for _, it := range its {
		fmt.Fprintf(&b, "%s,%s,%d\n", csvField(it.Member), csvField(it.Title), it.TS.Unix())
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteClicks writes member,query,title,clicked,position.
func WriteClicks(w io.Writer, clicks []Click) error {
	var b bytes.Buffer
	b.WriteString("member,query,title,clicked,position\n")
	for _, c := range clicks {
		fmt.Fprintf(&b, "%s,%s,%s,%t,%d\n", csvField(c.Member), csvField(c.Query), csvField(c.Title), c.Clicked, c.Position)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\r\n") || strings.TrimSpace(s) != s {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
