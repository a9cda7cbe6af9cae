// Package signal is baton's signal layer: contracts (the params a signal
// carries), publishing with validation and deduplication, CEL conditions and
// param mappings, and the checks a flow's signal references must pass when
// it is applied.
package signal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Contracts are the declared signals, by name.
type Contracts map[string]flow.Signal

// Load reads the registered contracts.
func Load(ctx context.Context, st store.SignalStore) (Contracts, error) {
	cs, err := st.SignalContracts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(Contracts, len(cs))
	for _, c := range cs {
		var sg flow.Signal
		if err := json.Unmarshal(c.Spec, &sg); err != nil {
			return nil, fmt.Errorf("contract %s: %w", c.Name, err)
		}
		out[c.Name] = sg
	}
	return out, nil
}

// With returns c plus the contracts in more (which win).
func (c Contracts) With(more []flow.Signal) Contracts {
	out := make(Contracts, len(c)+len(more))
	for k, v := range c {
		out[k] = v
	}
	for _, s := range more {
		out[s.Name] = s
	}
	return out
}

// Names lists the declared signals.
func (c Contracts) Names() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrNoContract is wrapped by the *Error of a signal no contract declares.
var ErrNoContract = errors.New("no contract declares the signal")

// Error is a signal refused by its contract. Field names the param; Err,
// when set, says which kind of refusal it is (ErrNoContract).
type Error struct {
	Signal string
	Field  string
	Msg    string
	Err    error
}

func (e *Error) Unwrap() error { return e.Err }

// Is sorts a contract violation as invalid input.
func (e *Error) Is(target error) bool { return target == fault.Invalid }

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("signal %s: %s", e.Signal, e.Msg)
	}
	return fmt.Sprintf("signal %s: param %s: %s", e.Signal, e.Field, e.Msg)
}

func (c Contracts) contract(name string) (flow.Signal, error) {
	sg, ok := c[name]
	if !ok {
		known := "none is declared yet"
		if len(c) > 0 {
			known = "declared: " + strings.Join(c.Names(), ", ")
		}
		return sg, &Error{Signal: name, Err: ErrNoContract,
			Msg: fmt.Sprintf("no contract declares it (%s); declare it in a signals file and apply it with `baton flow apply`", known)}
	}
	return sg, nil
}

// Check validates params against the contract of signal name and returns
// them in canonical form. Every problem is an *Error naming the param.
func (c Contracts) Check(name string, params map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	sg, err := c.contract(name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(params))
	var errs []error
	declared := make([]string, 0, len(sg.Params))
	for _, p := range sg.Params {
		declared = append(declared, p.Name)
		v, ok := params[p.Name]
		if !ok || string(v) == "null" {
			if p.Required {
				errs = append(errs, &Error{Signal: name, Field: p.Name, Msg: fmt.Sprintf("is required (%s)", p.Type)})
			}
			continue
		}
		cv, err := flow.CheckValue(p.Type, v)
		if err != nil {
			errs = append(errs, &Error{Signal: name, Field: p.Name, Msg: err.Error()})
			continue
		}
		out[p.Name] = cv
	}
	var extra []string
	for k := range params {
		if !slices.Contains(declared, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		errs = append(errs, &Error{Signal: name, Field: k, Msg: fmt.Sprintf("is not in the contract (declared: %s)", listOr(declared))})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FromText converts NAME=VALUE text (the CLI's --param) to the types the
// contract of signal name declares, then checks the result.
func (c Contracts) FromText(name string, kv map[string]string) (map[string]json.RawMessage, error) {
	sg, err := c.contract(name)
	if err != nil {
		return nil, err
	}
	params := make(map[string]json.RawMessage, len(kv))
	var errs []error
	for k, text := range kv {
		t := flow.String
		for _, p := range sg.Params {
			if p.Name == k {
				t = p.Type
			}
		}
		v, err := flow.ParseValue(t, text)
		if err != nil {
			errs = append(errs, &Error{Signal: name, Field: k, Msg: err.Error()})
			continue
		}
		params[k] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c.Check(name, params)
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// NewID returns a fresh signal id: time-ordered, with 64 random bits.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("sig-%x-%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}

// Publish checks params against the contract and stores the signal. With
// an empty id a fresh one is made; an id published before returns that
// signal and false (one id is one signal).
func Publish(ctx context.Context, st store.SignalStore, c Contracts, name, id string,
	params map[string]json.RawMessage, src store.SignalSource) (store.Signal, bool, error) {
	checked, err := c.Check(name, params)
	if err != nil {
		return store.Signal{}, false, err
	}
	if id == "" {
		id = NewID()
	} else if err := validID(id); err != nil {
		return store.Signal{}, false, err
	}
	if src.Kind == "" {
		src.Kind = store.SourceExternal
	}
	return st.PublishSignal(ctx, store.Signal{ID: id, Name: name, Params: checked, Source: src})
}

func validID(id string) error {
	if len(id) > 200 {
		return &Error{Field: "id", Msg: "is longer than 200 characters"}
	}
	for _, r := range id {
		if r < 0x21 || r == 0x7f {
			return &Error{Field: "id", Msg: fmt.Sprintf("%q contains a space or control character", id)}
		}
	}
	return nil
}
