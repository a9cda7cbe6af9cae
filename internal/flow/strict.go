package flow

import (
	"errors"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/baton-ml/baton/internal/dur"
)

// UnmarshalYAML reads a Go duration string ("50ms", "5m") for documents
// decoded with DecodeStrict.
func (d *Duration) UnmarshalYAML(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := dur.Parse(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DecodeStrict decodes a YAML document into v, refusing unknown keys. Its
// error is Errors naming the file, line, column and problem, so that every
// definitions file (endpoints, experiments) reports like a flow file.
func DecodeStrict(file string, data []byte, v any) error {
	err := yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField())
	if err == nil {
		return nil
	}
	e := &Error{File: file, Msg: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e.Msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return Errors{e}
}
