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
	"path/filepath"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// Document is one file to apply. Dir is the folder the flow's shell steps
// run in (the file's folder); Path is kept for people.
type Document struct {
	Path string
	Dir  string
	Data []byte
}

// Applied says what one document registered.
type Applied struct {
	Path    string `json:"path"`
	Flow    string `json:"flow,omitempty"`
	Version int    `json:"version,omitempty"`
	// Created says the flow version is new.
	Created   bool     `json:"created"`
	Contracts []string `json:"contracts,omitempty"`
	// ContractsChanged lists the contracts that were new or changed.
	ContractsChanged []string `json:"contracts_changed,omitempty"`
}

// Parsed is a checked document ready to store.
type Parsed struct {
	Doc     Document
	Flow    *flow.Flow
	Version store.FlowVersion // zero for a contracts-only document
}

// Check parses every document against the registered contracts plus those
// the batch declares. It returns flow.Errors (with files, lines and
// fields) when anything is wrong.
func Check(ctx context.Context, st store.Store, docs []Document) ([]Parsed, error) {
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
	for i, p := range parsed {
		if p.Flow.ContractsOnly() {
			continue
		}
		v, created, err := st.PutFlowVersion(ctx, p.Version)
		if err != nil {
			return nil, fmt.Errorf("register flow %s: %w", p.Flow.Name, err)
		}
		out[i].Flow, out[i].Version, out[i].Created = v.Flow, v.Version, created
	}
	return out, nil
}

// Apply checks and stores documents.
func Apply(ctx context.Context, st store.Store, docs []Document) ([]Applied, error) {
	parsed, err := Check(ctx, st, docs)
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
