package rec

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
)

// The model file: one text line "BATONREC <format version> <kind>\n",
// then the body, a gob stream of one fileBody with the shared part and
// exactly the kind's own part set. The line makes a file recognisable
// (head -1) and lets Load refuse another file before decoding anything.
const (
	magic         = "BATONREC"
	FormatVersion = 1
)

// ErrNotModel is what Load returns for a file that is not a
// recommendation model (errors.Is; it is invalid input).
var ErrNotModel = fault.New(fault.Invalid, "not a baton recommendation model file")

type fileBody struct {
	Base  *base
	KNN   *knnModel
	ALS   *alsModel
	PPR   *pprModel
	Blend *blendModel
	MT    *mtModel
}

// fileBase is what Save writes of a base: its exported fields but Params,
// written as ParamList (sorted), since gob writes a map in Go's random
// order and the same training would get a new digest each time. Gob
// matches fields by name, so Load decodes it into a base (and still reads
// files that have Params).
type fileBase struct {
	Kind      string
	Titles    []Title
	Markets   []string
	Members   []Member
	Hist      history
	Pop       [][]float32
	Count     []float32
	ParamList [][2]string
	Until     int64
}

type fileBodyOut struct {
	Base  *fileBase
	KNN   *knnModel
	ALS   *alsModel
	PPR   *pprModel
	Blend *blendModel
	MT    *mtModel
}

// Save writes the model in the model file format.
func (r *Recommender) Save(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := fmt.Fprintf(bw, "%s %d %s\n", magic, FormatVersion, r.b.Kind); err != nil {
		return err
	}
	b := r.b
	fb := &fileBase{Kind: b.Kind, Titles: b.Titles, Markets: b.Markets, Members: b.Members, Hist: b.Hist, Pop: b.Pop, Count: b.Count,
		ParamList: make([][2]string, 0, len(b.Params)), Until: b.Until}
	for _, k := range slices.Sorted(maps.Keys(b.Params)) {
		fb.ParamList = append(fb.ParamList, [2]string{k, b.Params[k]})
	}
	body := fileBodyOut{Base: fb}
	switch s := r.s.(type) {
	case popScorer:
	case *knnModel:
		body.KNN = s
	case *alsModel:
		body.ALS = s
	case *pprModel:
		body.PPR = s
	case *blendModel:
		body.Blend = s
	case *mtModel:
		body.MT = s
	default:
		return fmt.Errorf("save: no file format for %T", r.s)
	}
	if err := gob.NewEncoder(bw).Encode(&body); err != nil {
		return fmt.Errorf("save %s model: %w", r.b.Kind, err)
	}
	return bw.Flush()
}

// Load reads a model file written by Save.
func Load(rd io.Reader) (*Recommender, error) {
	br := bufio.NewReaderSize(rd, 1<<20)
	head, err := br.Peek(len(magic) + 1)
	if err != nil || !bytes.Equal(head, []byte(magic+" ")) {
		return nil, fmt.Errorf("%w (a model file starts with %q; train one with baton rec train)", ErrNotModel, magic)
	}
	line, err := br.ReadString('\n')
	if err != nil || len(line) > 64 {
		return nil, fmt.Errorf("%w: the header line is damaged", ErrNotModel)
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		return nil, fmt.Errorf("%w: the header line %q is damaged", ErrNotModel, strings.TrimSpace(line))
	}
	v, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("%w: the header line %q is damaged", ErrNotModel, strings.TrimSpace(line))
	}
	if v != FormatVersion {
		return nil, fault.Errorf(fault.Invalid, "model file format version %d: this baton reads version %d", v, FormatVersion)
	}
	kind := f[2]
	var body fileBody
	if err := gob.NewDecoder(br).Decode(&body); err != nil {
		return nil, fault.Errorf(fault.Invalid, "%s model file: damaged body: %v", kind, err)
	}
	if body.Base == nil || body.Base.Kind != kind {
		return nil, fault.Errorf(fault.Invalid, "%s model file: damaged body (no model of that kind)", kind)
	}
	b := body.Base
	if len(b.ParamList) > 0 {
		b.Params = make(map[string]string, len(b.ParamList))
		for _, kv := range b.ParamList {
			b.Params[kv[0]] = kv[1]
		}
		b.ParamList = nil
	}
	if err := b.check(); err != nil {
		return nil, fault.Errorf(fault.Invalid, "%s model file: %v", kind, err)
	}
	b.index()
	r := &Recommender{b: b}
	switch kind {
	case KindPopularity:
		r.s = popScorer{}
	case KindKNN:
		r.s = body.KNN
	case KindALS:
		r.s = body.ALS
	case KindPPR:
		r.s = body.PPR
	case KindBlend:
		r.s = body.Blend
	case KindMultiTask:
		r.s = body.MT
	default:
		return nil, fault.Errorf(fault.Invalid, "model file of kind %q: this baton knows %s", kind, strings.Join(Kinds, ", "))
	}
	if c, ok := r.s.(interface{ check(*base) error }); ok {
		if err := c.check(b); err != nil {
			return nil, fault.Errorf(fault.Invalid, "%s model file: %v", kind, err)
		}
	}
	return r, nil
}

// check refuses a body whose parts disagree in size (a damaged or forged
// file must not make an index out of range later).
func (b *base) check() error {
	nt, nu := len(b.Titles), len(b.Members)
	if len(b.Hist.Ptr) != nu+1 || len(b.Hist.Title) != len(b.Hist.Weight) || len(b.Hist.Title) != len(b.Hist.Completed) {
		return fmt.Errorf("history does not match %d members", nu)
	}
	for u := range nu {
		if b.Hist.Ptr[u] > b.Hist.Ptr[u+1] || b.Hist.Ptr[u+1] > int64(len(b.Hist.Title)) {
			return fmt.Errorf("history row %d out of range", u)
		}
	}
	if b.Hist.Ptr[0] != 0 {
		return fmt.Errorf("history starts at %d", b.Hist.Ptr[0])
	}
	for _, t := range b.Hist.Title {
		if t < 0 || int(t) >= nt {
			return fmt.Errorf("history names title %d of %d", t, nt)
		}
	}
	if len(b.Pop) != len(b.Markets)+1 {
		return fmt.Errorf("popularity has %d rows for %d markets", len(b.Pop), len(b.Markets))
	}
	for _, row := range b.Pop {
		if len(row) != nt {
			return fmt.Errorf("popularity row of %d for %d titles", len(row), nt)
		}
	}
	if len(b.Count) != nt {
		return fmt.Errorf("play counts of %d for %d titles", len(b.Count), nt)
	}
	return nil
}
