package flow

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Every definitions file baton applies (endpoints, experiments) and every
// JSON body that carries the same specs is decoded here the way flow files
// are: through the position-carrying tree, so that each problem names its
// file, line, column and field, and every problem is reported at once
// rather than the first one only.

// Located is a decoded document: where each field was written, so that
// problems found later (by the semantic rules, or against the store) get
// a position too.
type Located struct {
	file string
	pos  map[string]pos
}

// Decode decodes data (YAML, or JSON, which is YAML) into v, a pointer to
// a struct or slice whose fields carry yaml tags (json tags when a field
// has none). Unknown keys, values of the wrong kind and values a field's
// UnmarshalText refuses are all reported, each with its position and
// field path; the error is Errors. Field paths start at the root: for a
// document that is a list, "[0].variants[1].model_version".
func Decode(file string, data []byte, v any) (*Located, error) {
	var errs errorList
	loc := &Located{file: file, pos: map[string]pos{}}
	root := parseYAML(data, &errs)
	if root == nil {
		if len(errs) == 0 {
			errs = append(errs, &Error{Line: 1, Column: 1, Msg: "the document is empty"})
		}
		return loc, errs.result(file)
	}
	// parseYAML's own message for an empty file speaks of flows.
	for _, e := range errs {
		if strings.HasPrefix(e.Msg, "the file is empty") {
			e.Msg = "the document is empty"
		}
	}
	td := treeDecoder{loc: loc, errs: &errs, budget: jsonBudget}
	td.decode(root, reflect.ValueOf(v).Elem(), "")
	return loc, errs.result(file)
}

// Place gives each problem the position of its field (or of the nearest
// enclosing field that was written) and the document's file, sorts them by
// position and returns them as one error (nil for none). Problems already
// placed keep their position.
func (l *Located) Place(es Errors) error {
	if len(es) == 0 {
		return nil
	}
	var list errorList
	for _, e := range es {
		c := *e
		if c.Line == 0 && l != nil {
			p := l.position(c.Field)
			c.Line, c.Column = p.line, p.col
		}
		list = append(list, &c)
	}
	file := ""
	if l != nil {
		file = l.file
	}
	return list.result(file)
}

// Within reports whether a problem about field may only repeat one of
// failed: a field that did not decode holds a zero value the rules would
// complain about again, below it ("variants[0].weight") and above it (the
// weights' sum at "variants").
func Within(field string, failed []string) bool {
	return slices.ContainsFunc(failed, func(q string) bool { return within(field, q) || field != "" && within(q, field) })
}

// Fields lists the fields named by es.
func (es Errors) Fields() []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		if e.Field != "" {
			out = append(out, e.Field)
		}
	}
	return out
}

func (l *Located) position(field string) pos {
	for {
		if p, ok := l.pos[field]; ok {
			return p
		}
		parent, ok := parentPath(field)
		if !ok {
			return pos{1, 1}
		}
		field = parent
	}
}

type treeDecoder struct {
	loc    *Located
	errs   *errorList
	budget int
}

func (d *treeDecoder) fail(p pos, field, format string, args ...any) {
	*d.errs = append(*d.errs, &Error{Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

// decode sets rv from v, reporting every problem under path.
func (d *treeDecoder) decode(v *value, rv reflect.Value, path string) {
	if _, ok := d.loc.pos[path]; !ok {
		d.loc.pos[path] = v.pos
	}
	if v.kind == badKind {
		return
	}
	if rv.Kind() == reflect.Pointer {
		if v.kind == nullKind {
			return
		}
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		d.decode(v, rv.Elem(), path)
		return
	}
	if rv.Type() == timeType {
		if v.kind == nullKind {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, v.text)
		if err != nil || v.kind != stringKind {
			d.fail(v.pos, path, "want a time such as \"2026-11-28T10:00:00Z\" (RFC 3339), not %s", describe(v))
			return
		}
		rv.Set(reflect.ValueOf(t))
		return
	}
	if rv.CanAddr() && rv.Addr().Type().Implements(textUnmarshaler) {
		if v.kind == nullKind {
			return
		}
		if !v.scalar() {
			d.fail(v.pos, path, "want a single value, not %s", v.kind)
			return
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(v.text)); err != nil {
			d.fail(v.pos, path, "%v", err)
		}
		return
	}
	switch rv.Kind() {
	case reflect.Interface:
		x, err := toGo(v, &d.budget)
		if err != nil {
			if err != errReported {
				d.fail(v.pos, path, "%v", err)
			}
			return
		}
		rv.Set(reflect.ValueOf(&x).Elem())
	case reflect.String:
		switch v.kind {
		case nullKind:
		case mapKind, seqKind:
			d.fail(v.pos, path, "want a string, not %s", v.kind)
		default:
			rv.SetString(v.text)
		}
	case reflect.Bool:
		switch v.kind {
		case nullKind:
		case boolKind:
			rv.SetBool(v.b)
		default:
			d.fail(v.pos, path, "want true or false, not %s", describe(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch {
		case v.kind == nullKind:
		case v.kind == intKind && !v.overflow && !rv.OverflowInt(v.i):
			rv.SetInt(v.i)
		case v.kind == floatKind && v.f == float64(int64(v.f)) && !rv.OverflowInt(int64(v.f)):
			rv.SetInt(int64(v.f))
		default:
			d.fail(v.pos, path, "want a whole number, not %s", describe(v))
		}
	case reflect.Float32, reflect.Float64:
		switch v.kind {
		case nullKind:
		case intKind:
			if v.overflow {
				d.fail(v.pos, path, "%s is too large", v.text)
				return
			}
			rv.SetFloat(float64(v.i))
		case floatKind:
			// JSON holds no NaN or infinity, and no rule is written for
			// them: a spec stored with one could not be read back.
			if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
				d.fail(v.pos, path, "%s is not a finite number", v.text)
				return
			}
			rv.SetFloat(v.f)
		default:
			d.fail(v.pos, path, "want a number, not %s", describe(v))
		}
	case reflect.Slice:
		switch v.kind {
		case nullKind:
			return
		case seqKind:
		default:
			d.fail(v.pos, path, "want a list, not %s", describe(v))
			return
		}
		out := reflect.MakeSlice(rv.Type(), len(v.items), len(v.items))
		for i, it := range v.items {
			d.decode(it, out.Index(i), indexPath(path, i))
		}
		rv.Set(out)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			d.fail(v.pos, path, "cannot be decoded (a map with %s keys)", rv.Type().Key())
			return
		}
		switch v.kind {
		case nullKind:
			return
		case mapKind:
		default:
			d.fail(v.pos, path, "want a mapping, not %s", describe(v))
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(v.entries))
		for _, e := range v.entries {
			p := keyPath(path, e.key)
			d.loc.pos[p] = e.keyPos
			ev := reflect.New(rv.Type().Elem()).Elem()
			d.decode(e.val, ev, p)
			out.SetMapIndex(reflect.ValueOf(e.key).Convert(rv.Type().Key()), ev)
		}
		rv.Set(out)
	case reflect.Struct:
		switch v.kind {
		case nullKind:
			return
		case mapKind:
		default:
			d.fail(v.pos, path, "want a mapping, not %s", describe(v))
			return
		}
		fields := structFields(rv.Type())
		for _, e := range v.entries {
			p := keyPath(path, e.key)
			i, ok := fields[e.key]
			if !ok {
				d.fail(e.keyPos, p, "unknown field %q; the fields here are %s", e.key, strings.Join(sortedKeys(fields), ", "))
				continue
			}
			// The key's position: a reader looks for the key, and for a
			// nested mapping its value starts on the next line.
			d.loc.pos[p] = e.keyPos
			if e.val.scalar() && e.val.kind != nullKind {
				d.loc.pos[p] = e.val.pos
			}
			d.decode(e.val, rv.Field(i), p)
		}
	default:
		d.fail(v.pos, path, "cannot be decoded (a Go %s)", rv.Kind())
	}
}

// describe names a value for a message: its kind and, for a scalar, its
// text.
func describe(v *value) string {
	switch v.kind {
	case mapKind, seqKind, nullKind:
		return v.kind.String()
	case stringKind:
		t := v.text
		if len(t) > 40 {
			t = t[:37] + "..."
		}
		return fmt.Sprintf("the string %q", t)
	}
	return v.text
}

// structFields maps each field's name in files (its yaml tag, else its json
// tag, else its Go name) to its index; fields tagged "-" are not read.
func structFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, ok := f.Tag.Lookup("yaml")
		if !ok {
			tag = f.Tag.Get("json")
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = i
	}
	return out
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// DidYouMean suggests the candidate closest to s when one is close enough
// to be a typo ("; did you mean \"plays_1h\"?"), or "".
func DidYouMean(s string, candidates []string) string { return didYouMean(s, candidates) }

// List names things in a message, shortening long lists ("none" for none).
func List[S ~string](names []S) string {
	ss := make([]string, len(names))
	for i, n := range names {
		ss[i] = string(n)
	}
	return list(ss)
}
