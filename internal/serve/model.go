package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/rec"
)

// Input is what a model sees: the entity key and its feature values.
type Input struct {
	Key      string         `json:"key"`
	Features map[string]any `json:"features"`
	// Attributes are the request's (such as market): what the caller
	// knows of the unit beyond its features.
	Attributes map[string]any `json:"attributes,omitempty"`
	// Query is a search endpoint's query.
	Query string `json:"query,omitempty"`
}

// Output is a model's answer. Confidence is in [0, 1].
type Output struct {
	Prediction any     `json:"prediction"`
	Confidence float64 `json:"confidence"`
}

// Model answers predictions. Implementations are safe for concurrent use.
type Model interface {
	Predict(ctx context.Context, in Input) (Output, error)
}

// Spec is a model artifact: a JSON document whose kind says how it runs.
// Built-in kinds run in process; http and command reach outside, under the
// endpoint's timeout.
type Spec struct {
	Kind string `json:"kind"`
	// logistic and linear: score = bias + Σ weights[f] · features[f].
	Bias    float64            `json:"bias,omitempty"`
	Weights map[string]float64 `json:"weights,omitempty"`
	// Confidence is a linear model's fixed confidence (default 1).
	Confidence *float64 `json:"confidence,omitempty"`
	// ranking: a static ranking (a popularity list), always confident.
	Items []any `json:"items,omitempty"`
	// http: POST {"key","features"} to URL, expect {"prediction","confidence"}.
	URL string `json:"url,omitempty"`
	// command: run Argv (no shell), JSON on stdin, JSON on stdout.
	Argv []string `json:"argv,omitempty"`
}

// Kinds of model specs.
var Kinds = []string{"logistic", "linear", "ranking", "http", "command"}

// Load builds the model a spec describes.
func Load(b []byte, client *http.Client) (Model, error) {
	if rec.IsModelFile(b) {
		return loadRec(b)
	}
	if rm, ok, err := loadRerank(b); ok {
		return rm, err
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("model spec: not a JSON model document (%v); a model artifact is JSON with kind one of %s, or a recommendation model file (baton rec train)", err, strings.Join(Kinds, ", "))
	}
	switch s.Kind {
	case "logistic", "linear":
		if len(s.Weights) == 0 {
			return nil, fmt.Errorf("model spec: a %s model needs weights", s.Kind)
		}
		return &linear{s: s, logistic: s.Kind == "logistic", names: slices.Sorted(maps.Keys(s.Weights))}, nil
	case "ranking":
		if len(s.Items) == 0 {
			return nil, errors.New("model spec: a ranking needs items")
		}
		return ranking{items: s.Items}, nil
	case "http":
		if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
			return nil, fmt.Errorf("model spec: url %q is not an http(s) URL", s.URL)
		}
		return &httpModel{url: s.URL, client: client}, nil
	case "command":
		if len(s.Argv) == 0 || s.Argv[0] == "" {
			return nil, errors.New("model spec: a command model needs argv")
		}
		return &command{argv: s.Argv}, nil
	}
	return nil, fmt.Errorf("model spec: kind %q: use one of %s", s.Kind, strings.Join(Kinds, ", "))
}

type linear struct {
	s        Spec
	logistic bool
	// names are the weights' features, sorted: the score is summed in
	// their order, since Go's random map order would answer the same
	// request with scores a rounding apart.
	names []string
}

func (m *linear) Predict(_ context.Context, in Input) (Output, error) {
	z := m.s.Bias
	for _, f := range m.names {
		w := m.s.Weights[f]
		// A missing or null feature contributes nothing: the model's
		// baseline, not an error.
		switch x := in.Features[f].(type) {
		case float64:
			z += w * x
		case bool:
			if x {
				z += w
			}
		case nil:
		default:
			return Output{}, fmt.Errorf("feature %s is %T, not a number", f, x)
		}
	}
	if !m.logistic {
		c := 1.0
		if m.s.Confidence != nil {
			c = *m.s.Confidence
		}
		return Output{Prediction: z, Confidence: c}, nil
	}
	p := 1 / (1 + math.Exp(-z))
	return Output{Prediction: p, Confidence: math.Max(p, 1-p)}, nil
}

type ranking struct{ items []any }

func (r ranking) Predict(context.Context, Input) (Output, error) {
	return Output{Prediction: r.items, Confidence: 1}, nil
}

type httpModel struct {
	url    string
	client *http.Client
}

// maxModelResponse bounds what an external model may send back.
const maxModelResponse = 1 << 20

func (m *httpModel) Predict(ctx context.Context, in Input) (Output, error) {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, bytes.NewReader(body))
	if err != nil {
		return Output{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return Output{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxModelResponse))
	if err != nil {
		return Output{}, err
	}
	if resp.StatusCode/100 != 2 {
		return Output{}, fmt.Errorf("model server answered %s", resp.Status)
	}
	return decodeOutput(b)
}

// decodeOutput reads {"prediction", "confidence"}; anything else is garbage.
func decodeOutput(b []byte) (Output, error) {
	var raw struct {
		Prediction json.RawMessage `json:"prediction"`
		Confidence *float64        `json:"confidence"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Output{}, fmt.Errorf("model answer is not JSON: %v", err)
	}
	if raw.Prediction == nil || raw.Confidence == nil {
		return Output{}, errors.New(`model answer lacks "prediction" or "confidence"`)
	}
	c := *raw.Confidence
	if math.IsNaN(c) || c < 0 || c > 1 {
		return Output{}, fmt.Errorf("model confidence %g is not in [0, 1]", c)
	}
	var p any
	_ = json.Unmarshal(raw.Prediction, &p)
	return Output{Prediction: p, Confidence: c}, nil
}

type command struct{ argv []string }

func (m *command) Predict(ctx context.Context, in Input) (Output, error) {
	body, _ := json.Marshal(in)
	cmd := exec.CommandContext(ctx, m.argv[0], m.argv[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// Its own process group, killed whole when the timeout ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return Output{}, fmt.Errorf("model command: %v %s", err, msg)
	}
	if out.Len() > maxModelResponse {
		return Output{}, errors.New("model command wrote more than 1 MiB")
	}
	return decodeOutput(out.Bytes())
}
