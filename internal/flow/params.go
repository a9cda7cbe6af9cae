package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// ResolveParams turns the text values of a run's params (from --param k=v,
// or a signal's params already rendered as text) into typed canonical JSON,
// and fills in defaults. The result holds every declared param. An
// undeclared name, a value that does not fit its param's type, or a missing
// required param is an error naming the param.
func (f *Flow) ResolveParams(given map[string]string) (map[string]json.RawMessage, error) {
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
		v, err := parseParamValue(p.Type, given[k])
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
			l.add(keyPath("params", p.Name), "param %q is required: pass --param %s=VALUE (%s)", p.Name, p.Name, p.Type)
			continue
		}
		out[p.Name] = p.Default
	}
	if err := l.result(""); err != nil {
		return nil, err
	}
	return out, nil
}

// parseParamValue converts the text of a param value into canonical JSON of
// type t: int and float as JSON numbers, bool as true or false, json as the
// (canonicalized) JSON text itself and string as a JSON string.
func parseParamValue(t ParamType, s string) (json.RawMessage, error) {
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
