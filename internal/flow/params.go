package flow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ResolveParams turns the text values of a run's params (from --param k=v,
// or a signal's params already rendered as text) into typed canonical JSON,
// and fills in defaults. The result holds every declared param. An
// undeclared name, a value that does not fit its param's type, or a missing
// required param is an error naming the param.
func (f *Flow) ResolveParams(given map[string]string) (map[string]json.RawMessage, error) {
	return resolveParams(f, given, func(p *Param, v string) (json.RawMessage, error) { return ParseValue(p.Type, v) })
}

// CheckParams is ResolveParams for values given as JSON (an API body):
// each must be JSON of its param's type.
func (f *Flow) CheckParams(given map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	return resolveParams(f, given, func(p *Param, v json.RawMessage) (json.RawMessage, error) { return CheckValue(p.Type, v) })
}

// resolveParams is the one rule for a run's params, whatever form they
// arrive in.
func resolveParams[V any](f *Flow, given map[string]V, value func(*Param, V) (json.RawMessage, error)) (map[string]json.RawMessage, error) {
	var l errorList
	declared := make([]string, 0, len(f.Params))
	for _, p := range f.Params {
		declared = append(declared, p.Name)
	}
	names := make([]string, 0, len(given))
	for k := range given {
		names = append(names, k)
	}
	sort.Strings(names)

	out := make(map[string]json.RawMessage, len(f.Params))
	for _, k := range names {
		at := keyPath("params", k)
		p := f.Param(k)
		if p == nil {
			if len(declared) == 0 {
				l.add(at, "flow %q declares no params", f.Name)
			} else {
				l.add(at, "flow %q has no param %q (declared: %s)%s", f.Name, k, list(declared), didYouMean(k, declared))
			}
			continue
		}
		v, err := value(p, given[k])
		if err != nil {
			l.add(at, "%v", err)
			continue
		}
		out[k] = v
	}
	for _, p := range f.Params {
		if _, ok := given[p.Name]; ok {
			continue
		}
		if p.Required() {
			l.add(keyPath("params", p.Name), "param %q is required (%s)", p.Name, p.Type)
			continue
		}
		out[p.Name] = p.Default
	}
	if err := l.result(""); err != nil {
		return nil, err
	}
	return out, nil
}

// MaxParam is the largest value a param takes, in bytes of its canonical
// JSON: params are stored with the run, shown by `baton show` and copied to
// every task. Larger data belongs in a file the flow reads or an artifact.
const MaxParam = 4 << 20

// MaxEnvParam is the largest param value, as a task sees it (ParamEnv),
// passed in the environment as BATON_PARAM_<NAME>. A larger one reaches
// shell tasks as a file instead, named by BATON_PARAM_FILE_<NAME>: Linux
// refuses to start a process with any one environment string over 128 KiB
// (MAX_ARG_STRLEN), or with all of them over ARG_MAX, and says only
// "argument list too long".
const MaxEnvParam = 32 << 10

// MaxEnvParams bounds all of a run's params in the environment together:
// eighty params of 31 KiB each fit MaxEnvParam one by one but not ARG_MAX
// (2 MiB with the rest of the environment) together.
const MaxEnvParams = 256 << 10

// EnvParams decides which params reach shell tasks in the environment
// (BATON_PARAM_<NAME>); the others reach them as a file
// (BATON_PARAM_FILE_<NAME>). The smallest go in the environment first, each
// at most MaxEnvParam bytes, all together at most MaxEnvParams: so the
// decision depends only on the params, and a task always starts.
func EnvParams(params map[string]json.RawMessage) map[string]bool {
	type p struct {
		name string
		size int
	}
	ps := make([]p, 0, len(params))
	for name, v := range params {
		ps = append(ps, p{name, len(name) + len(ParamEnv(v))})
	}
	slices.SortFunc(ps, func(a, b p) int { return cmp.Or(cmp.Compare(a.size, b.size), cmp.Compare(a.name, b.name)) })
	in := make(map[string]bool, len(ps))
	total := 0
	for _, x := range ps {
		if x.size > MaxEnvParam || total+x.size > MaxEnvParams {
			break
		}
		total += x.size
		in[x.name] = true
	}
	return in
}

// checkSize refuses a value over MaxParam.
func checkSize(v json.RawMessage, err error) (json.RawMessage, error) {
	if err == nil && len(v) > MaxParam {
		return nil, tooLarge(len(v))
	}
	return v, err
}

func tooLarge(n int) error {
	return fmt.Errorf("the value is %s (%d bytes), over the %s (%d bytes) limit of a param: put the data in a file the flow reads, or in an artifact",
		Size(int64(n)), n, Size(MaxParam), MaxParam)
}

// Size writes a byte count for a message: 189 KiB, 4 MiB.
func Size(n int64) string {
	switch {
	case n >= 1<<20:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64), ".0") + " MiB"
	case n >= 1<<10:
		return strconv.FormatInt((n+1<<9)>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// ParseValue converts the text of a value (a --param k=v value) into
// canonical JSON of type t: int and float as JSON numbers, bool as true or
// false, json as the (canonicalized) JSON text itself and string (or an
// empty type) as a JSON string. The error says why s does not fit.
func ParseValue(t ParamType, s string) (json.RawMessage, error) {
	if len(s) > MaxParam {
		// Not worth parsing: no form of it fits.
		return nil, tooLarge(len(s))
	}
	return checkSize(parseValue(t, s))
}

func parseValue(t ParamType, s string) (json.RawMessage, error) {
	switch t {
	case String, "":
		return canonicalJSON(s)
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an int: write a whole number such as 42", s)
		}
		return json.RawMessage(strconv.FormatInt(i, 10)), nil
	case Float:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%q is not a float: write a finite number such as 0.5", s)
		}
		return canonicalJSON(x)
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a bool: write true or false", s)
		}
		return canonicalJSON(b)
	case JSON:
		v, err := canonicalize([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not valid JSON: %v", abbreviate(s), err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown param type %q", t)
}

// CheckValue checks that the JSON value v (a signal's param, say) is a
// value of type t and returns its canonical form, the one ParseValue gives:
//
//   - int: an integral JSON number within int64 (3, -7, 3.0 and 1e3 are;
//     3.5 and 1e19 are not), written as a plain integer;
//   - float: any finite JSON number;
//   - bool: true or false;
//   - string (or an empty type): a JSON string;
//   - json: any JSON value, with object keys sorted and spaces removed.
//
// The error says what was wanted and what came, as in
// `want an int, got "abc"`.
func CheckValue(t ParamType, v json.RawMessage) (json.RawMessage, error) {
	return checkSize(checkValue(t, v))
}

func checkValue(t ParamType, v json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(v)) == 0 {
		return nil, errors.New("no value: want a JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", abbreviate(string(v)), err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s is not valid JSON: unexpected data after the value", abbreviate(string(v)))
	}
	got := func() string {
		raw, err := canonicalJSON(x)
		if err != nil {
			return abbreviate(string(bytes.TrimSpace(v)))
		}
		return abbreviate(string(raw))
	}
	switch t {
	case String, "":
		if _, ok := x.(string); ok {
			return canonicalJSON(x)
		}
		return nil, fmt.Errorf("want a string, got %s", got())
	case Int:
		n, ok := x.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want an int, got %s", got())
		}
		i, fits, integral := jsonInt(string(n))
		switch {
		case !integral:
			return nil, fmt.Errorf("want an int, got %s, which is not a whole number", abbreviate(string(n)))
		case !fits:
			return nil, fmt.Errorf("want an int, got %s, which does not fit in 64 bits", abbreviate(string(n)))
		}
		return json.RawMessage(strconv.FormatInt(i, 10)), nil
	case Float:
		n, ok := x.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want a float, got %s", got())
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("want a float, got %s, which is too large for a 64-bit float", abbreviate(string(n)))
		}
		return canonicalJSON(f)
	case Bool:
		if _, ok := x.(bool); ok {
			return canonicalJSON(x)
		}
		return nil, fmt.Errorf("want a bool (true or false), got %s", got())
	case JSON:
		return canonicalJSON(x)
	}
	return nil, fmt.Errorf("unknown param type %q", t)
}

// jsonInt reads the JSON number s as an int64. integral says whether s is
// a whole number (3.0 and 1e3 are) and fits whether it is within int64;
// both hold when i is its value. It does the arithmetic on the digits, so
// neither precision nor huge exponents get in the way.
func jsonInt(s string) (i int64, fits, integral bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil {
			// An exponent beyond int: the digits decide, below.
			if strings.HasPrefix(expText, "-") {
				e = math.MinInt32
			} else {
				e = math.MaxInt32
			}
		}
		exp = max(min(e, math.MaxInt32), math.MinInt32)
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= len(frac)
	if digits == "" {
		return 0, true, true // zero, whatever its exponent
	}
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp < 0 {
		return 0, false, false
	}
	if len(digits)+exp > 19 {
		return 0, false, true
	}
	text := digits + strings.Repeat("0", exp)
	if neg {
		text = "-" + text
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, false, true
	}
	return i, true, true
}

// ParamEnv renders a param value for an environment variable: a JSON string
// as its text, anything else as compact JSON.
func ParamEnv(v json.RawMessage) string {
	var s string
	// Unmarshal also accepts null into a string; only a real string is unquoted.
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '"' && json.Unmarshal(t, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}

// valueProblem reports why raw is not a value of type t, or "".
func valueProblem(t ParamType, raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return "is not valid JSON"
	}
	if len(raw) > MaxParam {
		return fmt.Sprintf("the default is %s, over the %s limit of a param", Size(int64(len(raw))), Size(MaxParam))
	}
	ok := true
	want := ""
	switch t {
	case String:
		want = "a string"
		ok = raw[0] == '"' // valid JSON starting with a quote is a string
	case Int:
		want = "a whole number that fits in 64 bits"
		_, err := strconv.ParseInt(string(raw), 10, 64)
		ok = err == nil
	case Float:
		want = "a finite number"
		// A valid JSON text starting with '-' or a digit is a number.
		x, err := strconv.ParseFloat(string(raw), 64)
		ok = len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') && err == nil && !math.IsInf(x, 0)
	case Bool:
		want = "true or false"
		ok = string(raw) == "true" || string(raw) == "false"
	}
	if !ok {
		return fmt.Sprintf("the default does not fit type %s: want %s, got %s", t, want, abbreviate(string(raw)))
	}
	return ""
}

// abbreviate shortens s for a message.
func abbreviate(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
