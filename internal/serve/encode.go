package serve

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/search"
)

// AppendJSON appends the response as encoding/json's Encoder writes it
// (compact, HTML-safe, a newline after), byte for byte, without
// reflection: a page of 80 titles took the reflective encoder about as
// long as re-ranking it. ok is false for a prediction it does not know
// and for a value encoding/json refuses (NaN, ±Inf): encode those with
// encoding/json, which then says why.
func (r *Response) AppendJSON(dst []byte) (_ []byte, ok bool) {
	e := jsonAppender{b: dst, ok: true}
	e.b = append(e.b, `{"endpoint":`...)
	e.str(r.Endpoint)
	e.b = append(e.b, `,"model":`...)
	e.str(r.Model)
	e.b = append(e.b, `,"version":`...)
	e.b = strconv.AppendInt(e.b, int64(r.Version), 10)
	e.b = append(e.b, `,"prediction":`...)
	e.value(r.Prediction)
	e.b = append(e.b, `,"confidence":`...)
	e.float(r.Confidence)
	if r.ModelConfidence != nil {
		e.b = append(e.b, `,"model_confidence":`...)
		e.float(*r.ModelConfidence)
	}
	e.b = append(e.b, `,"path":`...)
	e.str(r.Path)
	e.b = append(e.b, `,"reason":`...)
	e.str(r.Reason)
	if r.Detail != "" {
		e.b = append(e.b, `,"detail":`...)
		e.str(r.Detail)
	}
	if r.Canary {
		e.b = append(e.b, `,"canary":true`...)
	}
	if r.Experiment != "" {
		e.b = append(e.b, `,"experiment":`...)
		e.str(r.Experiment)
	}
	e.b = append(e.b, `,"latency_ms":`...)
	e.float(r.LatencyMS)
	e.b = append(e.b, "}\n"...)
	return e.b, e.ok
}

// jsonAppender writes what encoding/json writes for the values serving
// answers with; ok turns false at anything else.
type jsonAppender struct {
	b  []byte
	ok bool
}

func (e *jsonAppender) value(v any) {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case bool:
		e.b = strconv.AppendBool(e.b, x)
	case float64:
		e.float(x)
	case int:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case int64:
		e.b = strconv.AppendInt(e.b, x, 10)
	case string:
		e.str(x)
	case []any:
		if x == nil {
			e.b = append(e.b, "null"...)
			return
		}
		e.b = append(e.b, '[')
		for i, y := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.value(y)
		}
		e.b = append(e.b, ']')
	case []string:
		if x == nil {
			e.b = append(e.b, "null"...)
			return
		}
		e.b = append(e.b, '[')
		for i, y := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(y)
		}
		e.b = append(e.b, ']')
	case map[string]any:
		if x == nil {
			e.b = append(e.b, "null"...)
			return
		}
		// encoding/json writes a map's keys in order.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(k)
			e.b = append(e.b, ':')
			e.value(x[k])
		}
		e.b = append(e.b, '}')
	case []rec.Item:
		if x == nil {
			e.b = append(e.b, "null"...)
			return
		}
		e.b = append(e.b, '[')
		for i, it := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, `{"title":`...)
			e.str(it.Title)
			e.b = append(e.b, `,"score":`...)
			e.float(it.Score)
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	case Page:
		e.page(&x)
	case SearchAnswer:
		e.search(&x)
	default:
		e.ok = false
	}
}

func (e *jsonAppender) page(p *Page) {
	e.b = append(e.b, `{"member":`...)
	e.str(p.Member)
	if p.Market != "" {
		e.b = append(e.b, `,"market":`...)
		e.str(p.Market)
	}
	e.b = append(e.b, `,"rows":`...)
	if p.Rows == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range p.Rows {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.row(&p.Rows[i])
		}
		e.b = append(e.b, ']')
	}
	if d := p.Decision; d != nil {
		e.b = append(e.b, `,"decision":{"id":`...)
		e.str(d.ID)
		e.b = append(e.b, `,"policy":`...)
		e.str(d.Policy)
		e.b = append(e.b, `,"propensity":`...)
		e.float(d.Propensity)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, '}')
}

func (e *jsonAppender) row(r *PageRow) {
	e.b = append(e.b, `{"id":`...)
	e.str(r.ID)
	e.b = append(e.b, `,"title":`...)
	e.str(r.Title)
	e.b = append(e.b, `,"reason":`...)
	e.str(r.Reason)
	e.b = append(e.b, `,"items":`...)
	if r.Items == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range r.Items {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			it := &r.Items[i]
			e.b = append(e.b, `{"title":`...)
			e.str(it.Title)
			if it.Name != "" {
				e.b = append(e.b, `,"name":`...)
				e.str(it.Name)
			}
			e.b = append(e.b, `,"score":`...)
			e.float(it.Score)
			if it.NewCreator {
				e.b = append(e.b, `,"new_creator":true`...)
			}
			if it.Artwork != "" {
				e.b = append(e.b, `,"artwork":`...)
				e.str(it.Artwork)
			}
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, `,"diversity":`...)
	e.float(r.Diversity)
	e.b = append(e.b, `,"new_creator_share":`...)
	e.float(r.NewCreatorShare)
	e.b = append(e.b, '}')
}

func (e *jsonAppender) search(a *SearchAnswer) {
	e.b = append(e.b, `{"query":`...)
	e.str(a.Query)
	if a.Member != "" {
		e.b = append(e.b, `,"member":`...)
		e.str(a.Member)
	}
	e.b = append(e.b, `,"hits":`...)
	if a.Hits == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range a.Hits {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.hit(&a.Hits[i])
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
}

func (e *jsonAppender) hit(h *search.Hit) {
	e.b = append(e.b, `{"title":`...)
	e.str(h.Title)
	e.b = append(e.b, `,"name":`...)
	e.str(h.Name)
	e.b = append(e.b, `,"rank":`...)
	e.b = strconv.AppendInt(e.b, int64(h.Rank), 10)
	e.b = append(e.b, `,"bm25":`...)
	e.float(h.BM25)
	e.b = append(e.b, `,"bm25_rank":`...)
	e.b = strconv.AppendInt(e.b, int64(h.BM25Rank), 10)
	e.b = append(e.b, `,"score":`...)
	if h.Score == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.float(*h.Score)
	}
	e.b = append(e.b, `,"path":`...)
	e.str(h.Path)
	e.b = append(e.b, `,"why":`...)
	e.str(h.Why)
	e.b = append(e.b, '}')
}

// float is encoding/json's float64: ES6 number formatting, which
// encoding/json does not write for NaN or ±Inf.
func (e *jsonAppender) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		e.ok = false
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9.
		if n := len(e.b); n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

const hexDigits = "0123456789abcdef"

// str is encoding/json's string with HTML escaping (the Encoder's
// default): <, > and & as \u003c, \u003e and \u0026, control characters
// escaped, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func (e *jsonAppender) str(s string) {
	e.b = append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			e.b = append(e.b, s[start:i]...)
			switch c {
			case '\\', '"':
				e.b = append(e.b, '\\', c)
			case '\b':
				e.b = append(e.b, '\\', 'b')
			case '\f':
				e.b = append(e.b, '\\', 'f')
			case '\n':
				e.b = append(e.b, '\\', 'n')
			case '\r':
				e.b = append(e.b, '\\', 'r')
			case '\t':
				e.b = append(e.b, '\\', 't')
			default:
				e.b = append(e.b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	e.b = append(e.b, s[start:]...)
	e.b = append(e.b, '"')
}
