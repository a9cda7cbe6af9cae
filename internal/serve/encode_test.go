package serve

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/baton-ml/baton/internal/rec"
)

// AppendJSON writes what encoding/json's Encoder writes, byte for byte,
// for responses whose every field (found by reflection, so that a field
// added to Response, Page or a search hit and not to AppendJSON fails
// here) holds random values: strings with HTML, quotes, control
// characters, invalid UTF-8 and line separators; floats at the
// exponent cut-offs, tiny, huge, negative and -0; nil and empty lists.
// What encoding/json refuses (NaN) or AppendJSON does not know, it
// declines.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	f := filler{rng: rng}
	for i := range 20_000 {
		var r Response
		f.fill(reflect.ValueOf(&r).Elem(), 0)
		want, werr := encodeStd(r)
		got, ok := r.AppendJSON([]byte("prefix"))
		if werr != nil {
			if ok {
				t.Fatalf("case %d: encoding/json refuses (%v), AppendJSON wrote %s", i, werr, got)
			}
			continue
		}
		if !ok {
			if f.known(r.Prediction) {
				t.Fatalf("case %d: AppendJSON declined %#v", i, r.Prediction)
			}
			continue
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("case %d:\n got %s\nwant prefix%s", i, got, want)
		}
	}
	if f.declined == 0 || f.refused == 0 {
		t.Fatalf("the cases never tried an unknown prediction (%d) or a NaN (%d)", f.declined, f.refused)
	}
}

func encodeStd(v any) ([]byte, error) {
	var b bytes.Buffer
	err := json.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

type filler struct {
	rng               *rand.Rand
	declined, refused int
}

var tricky = []string{"", "a", "<b>&amp;</b>", `say "hi" \ there`, "tab\there\nnew\rline\b\f", "\x00\x01\x1f\x7f",
	"caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff\xfe utf8", "\xe2\x80", "Because You Watched {title}", "t17"}

func (f *filler) str() string {
	if f.rng.IntN(3) == 0 {
		b := make([]byte, f.rng.IntN(12))
		for i := range b {
			b[i] = byte(f.rng.IntN(256))
		}
		return string(b)
	}
	return tricky[f.rng.IntN(len(tricky))]
}

var edgeFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 9.999999e20, 123456789, 1e-300, 1e300,
	-1e-9, 0.1 + 0.2, 1.0 / 3, float64(float32(0.7)), math.SmallestNonzeroFloat64, math.MaxFloat64}

func (f *filler) float() float64 {
	switch f.rng.IntN(40) {
	case 0:
		f.refused++
		return math.NaN()
	case 1:
		f.refused++
		return math.Inf(1 - 2*f.rng.IntN(2))
	}
	if f.rng.IntN(2) == 0 {
		return edgeFloats[f.rng.IntN(len(edgeFloats))]
	}
	return (f.rng.Float64() - 0.5) * math.Pow(10, float64(f.rng.IntN(40)-20))
}

// known says whether AppendJSON is meant to encode v.
func (f *filler) known(v any) bool {
	switch x := v.(type) {
	case nil, bool, float64, int, int64, string, []string, []rec.Item, Page, SearchAnswer:
		return true
	case []any:
		for _, y := range x {
			if !f.known(y) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, y := range x {
			if !f.known(y) {
				return false
			}
		}
		return true
	}
	return false
}

var anyType = reflect.TypeFor[any]()

// prediction is a random prediction of every kind serving answers with,
// and now and then one AppendJSON does not know.
func (f *filler) prediction(depth int) any {
	kinds := 12
	if depth > 2 {
		kinds = 6
	}
	switch f.rng.IntN(kinds) {
	case 0:
		return nil
	case 1:
		return f.rng.IntN(2) == 0
	case 2:
		return f.float()
	case 3:
		return f.str()
	case 4:
		return f.rng.IntN(2000) - 1000
	case 5:
		f.declined++
		return struct{ X int }{3} // not a prediction AppendJSON knows
	case 6:
		var xs []any
		if f.rng.IntN(4) > 0 {
			xs = []any{}
		}
		for range f.rng.IntN(4) {
			xs = append(xs, f.prediction(depth+1))
		}
		return xs
	case 7:
		var m map[string]any
		if f.rng.IntN(4) > 0 {
			m = map[string]any{}
		}
		for range f.rng.IntN(4) {
			if m == nil {
				m = map[string]any{}
			}
			m[f.str()] = f.prediction(depth + 1)
		}
		return m
	case 8:
		var x []string
		f.fill(reflect.ValueOf(&x).Elem(), depth+1)
		return x
	case 9:
		var x []rec.Item
		f.fill(reflect.ValueOf(&x).Elem(), depth+1)
		return x
	case 10:
		var x Page
		f.fill(reflect.ValueOf(&x).Elem(), depth+1)
		return x
	default:
		var x SearchAnswer
		f.fill(reflect.ValueOf(&x).Elem(), depth+1)
		return x
	}
}

// fill sets v, and every exported field and element under it, at random.
func (f *filler) fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(f.str())
	case reflect.Float64:
		v.SetFloat(f.float())
	case reflect.Int:
		v.SetInt(int64(f.rng.IntN(400) - 200))
	case reflect.Bool:
		v.SetBool(f.rng.IntN(2) == 0)
	case reflect.Pointer:
		if f.rng.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		switch f.rng.IntN(5) {
		case 0:
			v.SetZero()
			return
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		s := reflect.MakeSlice(v.Type(), 1+f.rng.IntN(3), 4)
		for i := range s.Len() {
			f.fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), depth+1)
			}
		}
	case reflect.Interface:
		if v.Type() != anyType {
			panic("fill: " + v.Type().String())
		}
		if p := f.prediction(depth); p != nil {
			v.Set(reflect.ValueOf(p))
		} else {
			v.SetZero()
		}
	default:
		panic("fill: a field of kind " + v.Kind().String() + " (" + v.Type().String() + "): teach AppendJSON and this filler")
	}
}
