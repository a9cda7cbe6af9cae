// Package jsonkey finds a key written twice in one JSON object.
// encoding/json keeps the last of them silently, so {"date": "a", "date":
// "b"} would run with b while the sender may have meant a; baton refuses
// such a document instead, naming the key.
package jsonkey

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// frame is an object or a list being read.
type frame struct {
	object bool
	base   string          // the path of the object or list itself
	keys   map[string]bool // an object's keys so far
	key    bool            // an object's next token is a key
	cur    string          // the path of the value being read
	index  int             // a list's next index
}

// Duplicate returns the path of the first key written twice in one object
// of the JSON document b ("params.date", "[2].unit"), or "" if there is
// none. A document that does not parse has no duplicate as far as this is
// concerned: decoding it reports the syntax error.
func Duplicate(b []byte) string {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var stack []*frame
	cur := func() string {
		if len(stack) == 0 {
			return ""
		}
		return stack[len(stack)-1].cur
	}
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.object {
			f.key = true
			return
		}
		f.index++
		f.cur = f.base + "[" + strconv.Itoa(f.index) + "]"
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].key {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				done()
				continue
			}
			k, _ := tok.(string)
			p := k
			if top.base != "" {
				p = top.base + "." + k
			}
			if top.keys[k] {
				return p
			}
			top.keys[k] = true
			top.key = false
			top.cur = p
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, base: cur(), keys: map[string]bool{}, key: true})
		case json.Delim('['):
			base := cur()
			stack = append(stack, &frame{base: base, cur: base + "[0]"})
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
