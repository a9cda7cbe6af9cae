package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Program is a compiled CEL expression over a signal: `params` (the
// signal's params, or the merged params of a join), `signal` (its name) and
// `run` (for on_finish: id, flow, status).
type Program struct {
	src string
	prg cel.Program
	// params are the top-level params the expression names
	// (params.region, params["region"]): a condition over a param the
	// signal lacks is not met.
	params []string
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("params", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("signal", cel.StringType),
		cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
})

// Compile compiles expr; with wantBool the expression must yield a bool
// (a condition), otherwise any value (a param mapping).
func Compile(expr string, wantBool bool) (*Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL %q does not compile: %v", expr, iss.Err())
	}
	if wantBool && ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("CEL %q yields %s; a condition must yield a bool", expr, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(100000))
	if err != nil {
		return nil, fmt.Errorf("CEL %q: %v", expr, err)
	}
	return &Program{src: expr, prg: prg, params: paramRefs(ast.NativeRep().Expr())}, nil
}

// paramRefs lists the params an expression selects: params.NAME and
// params["NAME"].
func paramRefs(e celast.Expr) []string {
	var out []string
	isParams := func(x celast.Expr) bool { return x.Kind() == celast.IdentKind && x.AsIdent() == "params" }
	celast.PostOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.SelectKind:
			if s := x.AsSelect(); isParams(s.Operand()) && !s.IsTestOnly() {
				out = append(out, s.FieldName())
			}
		case celast.CallKind:
			c := x.AsCall()
			if c.FunctionName() == operators.Index && len(c.Args()) == 2 && isParams(c.Args()[0]) && c.Args()[1].Kind() == celast.LiteralKind {
				if k, ok := c.Args()[1].AsLiteral().Value().(string); ok {
					out = append(out, k)
				}
			}
		}
	}))
	slices.Sort(out)
	return slices.Compact(out)
}

// Input is what an expression sees.
type Input struct {
	Signal string
	Params map[string]json.RawMessage
	Run    map[string]any
}

func (in Input) activation() (map[string]any, error) {
	params := make(map[string]any, len(in.Params))
	for k, v := range in.Params {
		x, err := decode(v)
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", k, err)
		}
		params[k] = x
	}
	run := map[string]any{}
	maps.Copy(run, in.Run)
	return map[string]any{"params": params, "signal": in.Signal, "run": run}, nil
}

// decode turns JSON into CEL-friendly values: integral numbers become
// int64 so that `params.rows > 100` compares as integers.
func decode(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	}
	return v
}

func (p *Program) eval(in Input) (ref.Val, error) {
	act, err := in.activation()
	if err != nil {
		return nil, err
	}
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return nil, fmt.Errorf("CEL %q: %w", p.src, err)
	}
	return out, nil
}

// Bool evaluates a condition. A missing param makes the condition false
// rather than an error: `params.region == "US"` is simply not met by a
// signal without a region.
func (p *Program) Bool(in Input) (bool, error) {
	for _, name := range p.params {
		if _, ok := in.Params[name]; !ok {
			return false, nil
		}
	}
	out, err := p.eval(in)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("CEL %q yielded %v, not a bool", p.src, out)
	}
	return bool(b), nil
}

// Value evaluates a mapping expression to JSON.
func (p *Program) Value(in Input) (json.RawMessage, error) {
	out, err := p.eval(in)
	if err != nil {
		return nil, err
	}
	native, err := out.ConvertToNative(reflect.TypeOf((*any)(nil)).Elem())
	if err != nil {
		return nil, fmt.Errorf("CEL %q: %v", p.src, err)
	}
	b, err := json.Marshal(native)
	if err != nil {
		return nil, fmt.Errorf("CEL %q: result %v is not JSON: %v", p.src, native, err)
	}
	return b, nil
}

// String returns the expression's source.
func (p *Program) String() string { return p.src }
