package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// The YAML AST is turned into this small tree first so that the flow decoder
// sees resolved anchors, aliases, merge keys and tags, yet every value still
// knows where it was written.

type pos struct{ line, col int }

type kind uint8

const (
	nullKind kind = iota
	boolKind
	intKind
	floatKind
	stringKind
	mapKind
	seqKind
	// badKind stands for a value whose problem was already reported, so the
	// rest of the file can still be checked without repeating it.
	badKind
)

// String names the kind for messages, with its article: "not an integer".
func (k kind) String() string {
	return [...]string{"null", "a boolean", "an integer", "a number", "a string", "a mapping", "a list", "an invalid value"}[k]
}

// value is one YAML value. Values reached through aliases are shared, so the
// tree is a DAG: code that expands it fully must bound its work (see
// jsonBudget).
type value struct {
	kind kind
	pos  pos
	// text is a string's value, or the source text of another scalar.
	text     string
	b        bool
	i        int64
	overflow bool // an integer outside int64; i is unset
	f        float64
	entries  []entry  // mapKind, in file order
	items    []*value // seqKind
}

type entry struct {
	key    string
	keyPos pos
	val    *value
}

func (v *value) scalar() bool { return v.kind < mapKind }

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 100

// YAML 1.2 core-schema numbers that the parser leaves as strings (1e3,
// integers beyond 64 bits).
var (
	intRE   = regexp.MustCompile(`^[-+]?[0-9]+$`)
	floatRE = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
)

// parseYAML parses data into a value tree. Problems are added to errs with
// their position; the tree is nil when nothing usable was found.
func parseYAML(data []byte, errs *errorList) *value {
	// The flow is stored as JSON, which cannot carry invalid UTF-8: refuse
	// it here rather than let a stored flow differ from its file.
	if !utf8.Valid(data) {
		p := invalidUTF8(data)
		*errs = append(*errs, &Error{Line: p.line, Column: p.col, Msg: "the file is not valid UTF-8: save it as UTF-8"})
		return nil
	}
	// Editors on Windows may start the file with a byte order mark, which
	// YAML allows and the parser does not skip.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	file, err := parseAST(data)
	if err != nil {
		e := &Error{Msg: "invalid YAML: " + err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			e.Msg = "invalid YAML: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				e.Line, e.Column = tk.Position.Line, tk.Position.Column
			}
		}
		*errs = append(*errs, e)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		*errs = append(*errs, &Error{Line: 1, Column: 1, Msg: "the file is empty: a flow needs at least a name and steps"})
		return nil
	case len(docs) > 1:
		p := nodePos(docs[1].Body)
		*errs = append(*errs, &Error{Line: p.line, Column: p.col, Msg: fmt.Sprintf("the file holds %d YAML documents: a flow file holds one (remove the extra ---)", len(docs))})
		return nil
	}
	c := converter{anchors: map[string]*value{}, errs: errs}
	return c.convert(docs[0].Body, "", 0)
}

// invalidUTF8 finds the first byte that is not valid UTF-8.
func invalidUTF8(data []byte) pos {
	p := pos{1, 1}
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return p
		}
		if r == '\n' {
			p.line, p.col = p.line+1, 1
		} else {
			p.col++
		}
		data = data[size:]
	}
	return p
}

// parseAST runs the YAML parser, turning a panic inside it into an error:
// flow files come from users and the server must survive any of them.
func parseAST(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

type converter struct {
	anchors map[string]*value
	errs    *errorList
}

// fail reports a problem and returns the placeholder for the bad value.
func (c *converter) fail(p pos, field, format string, args ...any) *value {
	*c.errs = append(*c.errs, &Error{Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
	return &value{kind: badKind, pos: p}
}

func nodePos(n ast.Node) pos {
	if n == nil {
		return pos{}
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		// The mapping's own token is its first ':'; its first key is where
		// a reader looks.
		if len(n.Values) > 0 && !n.IsFlowStyle {
			return nodePos(n.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(n.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, tk.Position.Column}
}

// convert turns n into a value; after reporting a problem it returns a
// badKind value.
func (c *converter) convert(n ast.Node, path string, depth int) *value {
	p := nodePos(n)
	if depth > maxDepth {
		return c.fail(p, path, "nested more than %d levels deep", maxDepth)
	}
	switch n := n.(type) {
	case nil:
		return &value{kind: nullKind, pos: p}
	case *ast.NullNode:
		return &value{kind: nullKind, pos: p, text: n.Token.Value}
	case *ast.BoolNode:
		return &value{kind: boolKind, pos: p, text: n.Token.Value, b: n.Value}
	case *ast.IntegerNode:
		v := &value{kind: intKind, pos: p, text: n.Token.Value}
		switch x := n.Value.(type) {
		case int64:
			v.i = x
		case uint64:
			if x > math.MaxInt64 {
				v.overflow = true
			} else {
				v.i = int64(x)
			}
		default:
			v.overflow = true
		}
		return v
	case *ast.FloatNode:
		return &value{kind: floatKind, pos: p, text: n.Token.Value, f: n.Value}
	case *ast.InfinityNode:
		return &value{kind: floatKind, pos: p, text: n.Token.Value, f: n.Value}
	case *ast.NanNode:
		return &value{kind: floatKind, pos: p, text: n.Token.Value, f: math.NaN()}
	case *ast.StringNode:
		if n.Token.Type == token.StringType { // plain, not quoted
			if v := plainNumber(n.Value, p); v != nil {
				return v
			}
		}
		return &value{kind: stringKind, pos: p, text: n.Value}
	case *ast.LiteralNode:
		if n.Value == nil {
			return &value{kind: stringKind, pos: p}
		}
		return &value{kind: stringKind, pos: p, text: n.Value.Value}
	case *ast.MergeKeyNode:
		return &value{kind: stringKind, pos: p, text: n.Token.Value}
	case *ast.MappingKeyNode:
		return c.convert(n.Value, path, depth+1)
	case *ast.MappingNode:
		return c.mapping(n.Values, p, path, depth)
	case *ast.MappingValueNode:
		return c.mapping([]*ast.MappingValueNode{n}, p, path, depth)
	case *ast.SequenceNode:
		v := &value{kind: seqKind, pos: p, items: make([]*value, 0, len(n.Values))}
		for i, item := range n.Values {
			v.items = append(v.items, c.convert(item, indexPath(path, i), depth+1))
		}
		return v
	case *ast.AnchorNode:
		v := c.convert(n.Value, path, depth+1)
		if n.Name != nil {
			// A later anchor of the same name replaces this one for the
			// aliases after it, as YAML says.
			c.anchors[n.Name.GetToken().Value] = v
		}
		return v
	case *ast.AliasNode:
		name := ""
		if n.Value != nil {
			name = n.Value.GetToken().Value
		}
		target, ok := c.anchors[name]
		if !ok {
			return c.fail(p, path, "alias *%s refers to no anchor defined before it (define &%s first; an anchor cannot contain an alias to itself)", name, name)
		}
		// Share the aliased content but report problems where the alias is.
		v := *target
		v.pos = p
		return &v
	case *ast.TagNode:
		return c.tagged(n, p, path, depth)
	default:
		return c.fail(p, path, "unsupported YAML construct (%s)", n.Type())
	}
}

func plainNumber(s string, p pos) *value {
	switch {
	case intRE.MatchString(s):
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return &value{kind: intKind, pos: p, text: s, overflow: true}
		}
		return &value{kind: intKind, pos: p, text: s, i: i}
	case floatRE.MatchString(s):
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil
		}
		return &value{kind: floatKind, pos: p, text: s, f: f}
	}
	return nil
}

func (c *converter) mapping(pairs []*ast.MappingValueNode, p pos, path string, depth int) *value {
	v := &value{kind: mapKind, pos: p}
	seen := map[string]pos{}
	var merged []*value
	for _, mv := range pairs {
		if mv == nil {
			continue
		}
		if mv.Key != nil && mv.Key.IsMergeKey() {
			src := c.convert(mv.Value, path, depth+1)
			switch {
			case src.kind == badKind:
			case src.kind == mapKind:
				merged = append(merged, src)
			case src.kind == seqKind && allMaps(src.items):
				merged = append(merged, src.items...)
			default:
				c.fail(nodePos(mv.Value), path, "a merge key (<<) takes a mapping or a list of mappings, not %s", src.kind)
			}
			continue
		}
		k := c.convert(mv.Key, path, depth+1)
		if k.kind == badKind {
			continue
		}
		if !k.scalar() || k.kind == nullKind {
			c.fail(k.pos, path, "a key must be a plain string, not %s", k.kind)
			continue
		}
		kp := keyPath(path, k.text)
		if first, dup := seen[k.text]; dup {
			c.fail(k.pos, kp, "duplicate key %q (first at line %d): remove one", k.text, first.line)
			continue
		}
		seen[k.text] = k.pos
		val := c.convert(mv.Value, kp, depth+1)
		v.entries = append(v.entries, entry{key: k.text, keyPos: k.pos, val: val})
	}
	// Keys written in the mapping win over merged ones, and earlier merge
	// sources win over later ones.
	for _, src := range merged {
		for _, e := range src.entries {
			if _, dup := seen[e.key]; !dup {
				seen[e.key] = e.keyPos
				v.entries = append(v.entries, e)
			}
		}
	}
	return v
}

func allMaps(vs []*value) bool {
	for _, v := range vs {
		if v.kind != mapKind {
			return false
		}
	}
	return true
}

// tagged applies the YAML core-schema tags; any other tag is refused rather
// than silently ignored.
func (c *converter) tagged(n *ast.TagNode, p pos, path string, depth int) *value {
	tag := n.Start.Value
	v := c.convert(n.Value, path, depth+1)
	if v.kind == badKind {
		return v
	}
	kw := token.ReservedTagKeyword(tag)
	switch kw {
	case token.StringTag, token.IntegerTag, token.FloatTag, token.BooleanTag:
		if !v.scalar() {
			return c.fail(p, path, "tag %s needs a scalar, not %s", tag, v.kind)
		}
	}
	text := strings.ReplaceAll(v.text, "_", "")
	switch kw {
	case token.StringTag:
		return &value{kind: stringKind, pos: p, text: v.text}
	case token.IntegerTag:
		if v.kind == intKind {
			return v
		}
		i, err := strconv.ParseInt(text, 0, 64)
		if err != nil {
			return c.fail(p, path, "!!int %q is not a 64-bit integer", v.text)
		}
		return &value{kind: intKind, pos: p, text: v.text, i: i}
	case token.FloatTag:
		if v.kind == floatKind {
			return v
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return c.fail(p, path, "!!float %q is not a number", v.text)
		}
		return &value{kind: floatKind, pos: p, text: v.text, f: f}
	case token.BooleanTag:
		b, err := strconv.ParseBool(v.text)
		if err != nil {
			return c.fail(p, path, "!!bool %q is not true or false", v.text)
		}
		return &value{kind: boolKind, pos: p, text: v.text, b: b}
	case token.NullTag:
		return &value{kind: nullKind, pos: p}
	case token.MappingTag:
		if v.kind != mapKind {
			return c.fail(p, path, "!!map tags %s", v.kind)
		}
		return v
	case token.SequenceTag:
		if v.kind != seqKind {
			return c.fail(p, path, "!!seq tags %s", v.kind)
		}
		return v
	}
	return c.fail(p, path, "unsupported tag %s (baton understands !!str, !!int, !!float, !!bool, !!null, !!map and !!seq)", tag)
}

// jsonBudget bounds the work of expanding one file's values into JSON:
// aliases can make a small file describe an exponentially large value.
// A unit is one value or one byte of text.
const jsonBudget = 8 << 20

var (
	errTooLarge = errors.New("the value is too large once its aliases are expanded")
	// errReported marks a conversion that hit a value whose problem was
	// already reported.
	errReported = errors.New("already reported")
)

// toGo converts v into plain Go values (map[string]any, []any, json.Number,
// string, bool, nil) for JSON encoding. budget is shared by every call for
// one file.
func toGo(v *value, budget *int) (any, error) {
	*budget -= 1 + len(v.text)
	if *budget < 0 {
		return nil, errTooLarge
	}
	switch v.kind {
	case nullKind:
		return nil, nil
	case boolKind:
		return v.b, nil
	case intKind:
		if v.overflow {
			// JSON has no integer limit; keep the value exactly.
			b, ok := new(big.Int).SetString(v.text, 0)
			if !ok {
				return nil, fmt.Errorf("%s is not an integer JSON can hold", v.text)
			}
			return json.Number(b.String()), nil
		}
		return json.Number(strconv.FormatInt(v.i, 10)), nil
	case floatKind:
		if math.IsInf(v.f, 0) || math.IsNaN(v.f) {
			return nil, fmt.Errorf("%s cannot be written in JSON: use a finite number", v.text)
		}
		return v.f, nil
	case stringKind:
		return v.text, nil
	case badKind:
		return nil, errReported
	case seqKind:
		out := make([]any, 0, len(v.items))
		for _, it := range v.items {
			x, err := toGo(it, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case mapKind:
		out := make(map[string]any, len(v.entries))
		for _, e := range v.entries {
			x, err := toGo(e.val, budget)
			if err != nil {
				return nil, err
			}
			out[e.key] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown value kind %d", v.kind)
}

// canonicalJSON encodes x compactly with sorted object keys and without
// HTML escaping, so equal values always have equal bytes.
func canonicalJSON(x any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// canonicalize rewrites valid JSON text into its canonical form.
func canonicalize(raw []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return canonicalJSON(x)
}
