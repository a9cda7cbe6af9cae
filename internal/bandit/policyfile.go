package bandit

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/baton-ml/baton/internal/fault"
)

// The policy file's header: a file whose kind is not FileKind is refused
// with ErrNotPolicy, one whose version is not FileVersion with
// ErrPolicyVersion.
const (
	FileKind    = "baton.bandit.policy"
	FileVersion = 1
	algorithm   = "linucb"
)

// policyFile is the saved form. A keeps A (not A⁻¹): loading inverts it
// once, exactly as training ends (see reinvert).
type policyFile struct {
	Kind      string     `json:"kind"`
	Version   int        `json:"version"`
	ID        string     `json:"id,omitempty"`
	Algorithm string     `json:"algorithm"`
	Params    Params     `json:"params"`
	Features  []Feature  `json:"features"`
	Trained   TrainInfo  `json:"trained"`
	Arms      []armEntry `json:"arms"`
}

type armEntry struct {
	Kind  Kind      `json:"kind"`
	Title string    `json:"title,omitempty"`
	Arm   string    `json:"arm"`
	N     int       `json:"n"`
	A     []float64 `json:"a"` // d×d, row-major
	B     []float64 `json:"b"`
}

func (p *Policy) file() policyFile {
	f := policyFile{Kind: FileKind, Version: FileVersion, ID: p.id, Algorithm: algorithm, Params: p.params,
		Features: p.fz.features, Trained: p.info, Arms: make([]armEntry, 0, p.arms.len())}
	if f.Features == nil {
		f.Features = []Feature{}
	}
	_ = p.arms.each(func(k armKey, m *armModel) error {
		f.Arms = append(f.Arms, armEntry{Kind: k.kind, Title: k.title, Arm: k.arm, N: m.n, A: m.a, B: m.b})
		return nil
	})
	slices.SortFunc(f.Arms, func(a, b armEntry) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Title, b.Title), cmp.Compare(a.Arm, b.Arm))
	})
	return f
}

// computeID digests everything a decision depends on: the same settings,
// encoding and models give the same id, a retrained policy another.
func (p *Policy) computeID() (string, error) {
	f := p.file()
	f.ID, f.Trained = "", TrainInfo{}
	b, err := json.Marshal(f)
	if err != nil {
		// Only a number out of float64's range (rewards summing to
		// infinity) fails here.
		return "", fault.Errorf(fault.Invalid, "the policy does not encode: %v", err)
	}
	sum := sha256.Sum256(b)
	return "lin-" + hex.EncodeToString(sum[:6]), nil
}

// MarshalJSON writes the policy file.
func (p *Policy) MarshalJSON() ([]byte, error) { return json.Marshal(p.file()) }

// WriteFile saves the policy to path through a temporary file renamed
// over it, so a reader never sees half a policy.
func (p *Policy) WriteFile(path string) (err error) {
	b, err := json.MarshalIndent(p.file(), "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}

// ReadPolicyFile loads a policy saved by WriteFile.
func ReadPolicyFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err)
	}
	defer f.Close()
	return LoadPolicy(f, path)
}

// LoadPolicy reads a policy file (name is used in errors). Another JSON
// document is ErrNotPolicy, another format version ErrPolicyVersion; a
// policy whose content no longer matches its id (edited by hand) is
// refused, since decisions log the id as the policy's version.
func LoadPolicy(r io.Reader, name string) (*Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var head struct {
		Kind    string `json:"kind"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil || head.Kind != FileKind {
		return nil, fmt.Errorf("%s: %w (want kind %q)", name, ErrNotPolicy, FileKind)
	}
	if head.Version != FileVersion {
		return nil, fmt.Errorf("%s: %w %d (this build reads %d)", name, ErrPolicyVersion, head.Version, FileVersion)
	}
	var pf policyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		return nil, fault.Invalidf("", "%s: %v", name, err)
	}
	bad := func(format string, args ...any) error {
		return fault.Invalidf("", "%s: %s", name, fmt.Sprintf(format, args...))
	}
	if pf.Algorithm != algorithm {
		return nil, bad("algorithm %q: this build knows %q", pf.Algorithm, algorithm)
	}
	if err := pf.Params.check(); err != nil {
		return nil, fmt.Errorf("%s: params: %w", name, err)
	}
	fz, err := NewFeaturizer(pf.Features)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := fz.Dim()
	p := &Policy{params: pf.Params, fz: fz, arms: models{}, info: pf.Trained}
	for i, e := range pf.Arms {
		where := fmt.Sprintf("arms[%d] (%s %q %q)", i, e.Kind, e.Title, e.Arm)
		if err := checkArms(e.Kind, e.Title, []string{e.Arm}); err != nil || !e.Kind.valid() {
			return nil, bad("%s: not a row or a title's artwork", where)
		}
		k := armKey{e.Kind, e.Title, e.Arm}
		if p.arms.get(k) != nil {
			return nil, bad("%s: given twice", where)
		}
		if len(e.A) != d*d || len(e.B) != d || e.N < 0 {
			return nil, bad("%s: a has %d numbers and b %d, the features make %d and %d", where, len(e.A), len(e.B), d*d, d)
		}
		for _, v := range slices.Concat(e.A, e.B) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, bad("%s: a number is not finite", where)
			}
		}
		m := &armModel{n: e.N, a: e.A, b: e.B, ainv: make([]float64, d*d), theta: make([]float64, d)}
		if err := m.reinvert(); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, where, err)
		}
		p.arms.set(k, m)
	}
	if p.id, err = p.computeID(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if pf.ID != p.id {
		return nil, bad("id %q does not match the content (%s): the file was changed after training", pf.ID, p.id)
	}
	return p, nil
}
