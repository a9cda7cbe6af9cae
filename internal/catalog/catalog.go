// Package catalog registers what users apply: flow versions and signal
// contracts. A batch of documents is checked whole before anything is
// stored, so one bad file registers nothing.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/snapshot"
	"github.com/baton-ml/baton/internal/store"
)

// Document is one file to apply. Dir is the flow's folder (the file's
// folder): what its code snapshot holds, or, registered without one,
// where its shell steps run. Path is kept for people.
type Document struct {
	Path string
	Dir  string
	Data []byte
}

// Code says how CheckCode snapshots flow folders: each flow of a document
// with a Dir gets a code snapshot of it, stored in Blobs by Store.
type Code struct {
	Blobs   *artifact.Store
	Options snapshot.Options
}

// Applied says what one document registered.
type Applied struct {
	Path    string `json:"path"`
	Flow    string `json:"flow,omitempty"`
	Version int    `json:"version,omitempty"`
	// Created says the flow version is new.
	Created bool `json:"created"`
	// Code and CodeSize are the version's code snapshot, CodeSkipped
	// what of its folder the snapshot left out for what it is (links
	// leading out of the folder).
	Code        string          `json:"code,omitempty"`
	CodeSize    int64           `json:"code_size,omitempty"`
	CodeSkipped []snapshot.Skip `json:"code_skipped,omitempty"`
	Contracts   []string        `json:"contracts,omitempty"`
	// ContractsChanged lists the contracts that were new or changed.
	ContractsChanged []string `json:"contracts_changed,omitempty"`
}

// Parsed is a checked document ready to store.
type Parsed struct {
	Doc     Document
	Flow    *flow.Flow
	Version store.FlowVersion // zero for a contracts-only document
	// Skipped is what the code snapshot left out of the folder.
	Skipped []snapshot.Skip
	code    *packed
}

// packed is a folder's snapshot as CheckCode saw it: only its digest is
// kept (a batch of flows sharing a big folder would otherwise hold one
// tar each in memory), and Store packs it again into blobs.
type packed struct {
	blobs *artifact.Store
	dir   string
	opt   snapshot.Options
	snapshot.Packed
}

// store puts the snapshot in blobs unless they hold it already (the same
// folder content registered before), packing the folder again through a
// temporary file: a folder that changed since CheckCode is an error, not
// a version naming a snapshot it does not have.
func (pk *packed) store(ctx context.Context) error {
	if ok, err := pk.blobs.Exists(ctx, pk.Digest); err != nil || ok {
		return err
	}
	f, err := os.CreateTemp("", "baton-code-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	again, err := snapshot.Pack(pk.dir, f, pk.opt)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if again.Digest != pk.Digest {
		return fmt.Errorf("%s changed while it was registered: apply it again", pk.dir)
	}
	d, _, err := pk.blobs.MoveFile(ctx, f.Name())
	if err == nil && d != pk.Digest {
		err = fmt.Errorf("stored as %s, packed as %s", d, pk.Digest)
	}
	return err
}

// Check parses every document against the registered contracts plus those
// the batch declares. It returns flow.Errors (with files, lines and
// fields) when anything is wrong. The versions it makes have no code
// snapshot: their shell steps run in their folder.
func Check(ctx context.Context, st store.Store, docs []Document) ([]Parsed, error) {
	return CheckCode(ctx, st, docs, nil)
}

// CheckCode is Check, and packs the folder of each flow with a Dir into a
// code snapshot when code is not nil. A snapshot makes the version: the same definition and folder
// content is the same version wherever the folder is, and an edited
// script is a new one.
func CheckCode(ctx context.Context, st store.Store, docs []Document, code *Code) ([]Parsed, error) {
	contracts, err := signal.Load(ctx, st)
	if err != nil {
		return nil, err
	}
	// Contracts declared anywhere in the batch count for every document:
	// signals.yaml and the flows using it are applied together.
	var declared []flow.Signal
	for _, d := range docs {
		if f, err := flow.Parse(d.Path, d.Data); err == nil {
			declared = append(declared, f.Signals...)
		}
	}
	check := contracts.With(declared).FlowCheck()
	var out []Parsed
	var errs flow.Errors
	packs := map[string]*packed{} // by flow file
	flows := map[string]string{}
	signals := map[string]string{}
	for _, d := range docs {
		f, err := flow.Parse(d.Path, d.Data, check)
		if err != nil {
			var fe flow.Errors
			if errors.As(err, &fe) {
				errs = append(errs, fe...)
				continue
			}
			return nil, err
		}
		for _, sg := range f.Signals {
			if prev, dup := signals[sg.Name]; dup {
				errs = append(errs, &flow.Error{File: d.Path, Field: "signals", Msg: fmt.Sprintf("signal %q is also declared in %s", sg.Name, prev)})
			}
			signals[sg.Name] = d.Path
		}
		p := Parsed{Doc: d, Flow: f}
		if !f.ContractsOnly() {
			if prev, dup := flows[f.Name]; dup {
				errs = append(errs, &flow.Error{File: d.Path, Field: "name", Msg: fmt.Sprintf("flow %q is also defined in %s", f.Name, prev)})
			}
			flows[f.Name] = d.Path
			spec, err := json.Marshal(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Path, err)
			}
			p.Version = store.FlowVersion{Flow: f.Name, Digest: f.VersionDigest(d.Dir, ""), Spec: spec,
				Source: string(d.Data), Path: d.Path, Dir: d.Dir}
			if code != nil && d.Dir != "" {
				// The flow file itself is left out: its definition is
				// the version already, canonical, so a comment changes
				// nothing, while any other file of the folder does.
				self := filepath.Join(d.Dir, filepath.Base(d.Path))
				pk := packs[self]
				if pk == nil {
					opt := code.Options
					opt.Exclude = append(slices.Clip(opt.Exclude), self)
					sp, err := snapshot.Pack(d.Dir, io.Discard, opt)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", d.Path, err)
					}
					pk = &packed{blobs: code.Blobs, dir: d.Dir, opt: opt, Packed: sp}
					packs[self] = pk
				}
				p.code, p.Skipped = pk, pk.Skipped
				p.Version.Code, p.Version.CodeSize = pk.Digest, pk.Size
				// The folder's content stands for the folder: where it
				// was applied from is no part of the version.
				p.Version.Digest = f.VersionDigest("", "snapshot:"+pk.Digest)
			}
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// Store registers checked documents: contracts first, then flow versions.
func Store(ctx context.Context, st store.Store, parsed []Parsed) ([]Applied, error) {
	var cs []store.SignalContract
	var owner []int
	for i, p := range parsed {
		for _, sg := range p.Flow.Signals {
			spec, err := json.Marshal(sg)
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256(spec)
			cs = append(cs, store.SignalContract{Name: sg.Name, Spec: spec, Digest: hex.EncodeToString(sum[:]), Path: p.Doc.Path})
			owner = append(owner, i)
		}
	}
	out := make([]Applied, len(parsed))
	for i, p := range parsed {
		out[i].Path = p.Doc.Path
	}
	if len(cs) > 0 {
		changed, err := st.PutSignalContracts(ctx, cs)
		if err != nil {
			return nil, fmt.Errorf("register contracts: %w", err)
		}
		for j, c := range cs {
			a := &out[owner[j]]
			a.Contracts = append(a.Contracts, c.Name)
			if changed[j] {
				a.ContractsChanged = append(a.ContractsChanged, c.Name)
			}
		}
	}
	stored := map[*packed]bool{}
	for i, p := range parsed {
		if p.Flow.ContractsOnly() {
			continue
		}
		// The snapshot first: a version never names a blob not stored.
		if pk := p.code; pk != nil && !stored[pk] {
			if err := pk.store(ctx); err != nil {
				return nil, fmt.Errorf("store the code snapshot of %s: %w", p.Flow.Name, err)
			}
			stored[pk] = true
		}
		v, created, err := st.PutFlowVersion(ctx, p.Version)
		if err != nil {
			return nil, fmt.Errorf("register flow %s: %w", p.Flow.Name, err)
		}
		out[i].Flow, out[i].Version, out[i].Created = v.Flow, v.Version, created
		out[i].Code, out[i].CodeSize, out[i].CodeSkipped = v.Code, v.CodeSize, p.Skipped
	}
	return out, nil
}

// Apply checks and stores documents, without code snapshots.
func Apply(ctx context.Context, st store.Store, docs []Document) ([]Applied, error) {
	return ApplyCode(ctx, st, docs, nil)
}

// ApplyCode checks and stores documents, with code snapshots when code is
// not nil.
func ApplyCode(ctx context.Context, st store.Store, docs []Document, code *Code) ([]Applied, error) {
	parsed, err := CheckCode(ctx, st, docs, code)
	if err != nil {
		return nil, err
	}
	return Store(ctx, st, parsed)
}

// FileDocument makes a document of a file's bytes: its folder is where its
// steps run.
func FileDocument(absPath string, data []byte) Document {
	return Document{Path: absPath, Dir: filepath.Dir(absPath), Data: data}
}
