// Package jsonkey finds a key written twice in one JSON object.
// encoding/json keeps the last of them silently, so {"date": "a", "date":
// "b"} would run with b while the sender may have meant a; baton refuses
// such a document instead, naming the key.
package jsonkey

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// frame is an object or a list being read. It keeps no path: a path is
// written only for the duplicate found. Each frame used to hold its own
// and its current value's path as strings, so a document of nested lists
// ([[[[...) cost memory quadratic in its depth: a 200 KB request body
// took a server past 20 GB.
type frame struct {
	parent *frame
	object bool
	keys   map[string]bool // an object's keys so far
	key    bool            // an object's next token is a key
	name   string          // an object's current key
	index  int             // a list's current index
}

// maxDepth is encoding/json's nesting limit: a deeper document does not
// decode, and its decoding reports that.
const maxDepth = 10000

// path is that of the value being read in f ("params.date", "[2]"),
// written once from the root down (joining each level's prefix would be
// quadratic again).
func (f *frame) path() string {
	var up []*frame
	for g := f; g != nil; g = g.parent {
		up = append(up, g)
	}
	var b strings.Builder
	for i := len(up) - 1; i >= 0; i-- {
		g := up[i]
		if !g.object {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(g.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(g.name)
	}
	return b.String()
}

// Duplicate returns the path of the first key written twice in one object
// of the JSON document b ("params.date", "[2].unit"), or "" if there is
// none. A document that does not parse, or nests deeper than encoding/json
// decodes, has no duplicate as far as this is concerned: decoding it
// reports the error.
func Duplicate(b []byte) string {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var stack []*frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	done := func() {
		if f := top(); f != nil {
			if f.object {
				f.key = true
			} else {
				f.index++
			}
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if f := top(); f != nil && f.object && f.key {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				done()
				continue
			}
			k, _ := tok.(string)
			f.name = k
			if f.keys[k] {
				return f.path()
			}
			f.keys[k] = true
			f.key = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxDepth {
				return ""
			}
			f := &frame{parent: top(), object: tok == json.Delim('{')}
			if f.object {
				f.keys, f.key = map[string]bool{}, true
			}
			stack = append(stack, f)
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			done()
		default:
			done()
		}
	}
}

// CountTop counts the keys of the top-level object of b, duplicates
// included, by one pass over the bytes: comparing it with the number of
// keys a decoded map holds tells, cheaply, whether one was written twice
// (then Duplicate names it). b must be valid JSON.
func CountTop(b []byte) int {
	depth, n := 0, 0
	in, esc := false, false
	for _, c := range b {
		switch {
		case in:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				in = false
			}
		case c == '"':
			in = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			n++
		}
	}
	return n
}
