package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// featureValues reads online feature values for serving.
type featureValues struct{ s *Server }

func (f featureValues) Values(ctx context.Context, key string, names []string, at time.Time) (map[string]any, error) {
	feats, err := f.s.features.Catalog().Select(names)
	if err != nil {
		return nil, err
	}
	v, err := f.s.features.Get(ctx, key, feats, at)
	if err != nil {
		return nil, err
	}
	return v.Features, nil
}

// openServing starts the prediction service over the registry, the
// artifact store and the online features.
func (s *Server) openServing(ctx context.Context) error {
	s.decisions = newDecisionLog(s.home.Dir)
	s.serving = serve.New(serve.Deps{Store: s.st, Blobs: s.blobs, Features: featureValues{s}, Log: s.log, Reg: s.m.reg, Now: s.opt.Now,
		Route:     s.exps.route,
		Decisions: s.decisions.decisions,
		Publish:   s.publish})
	s.rollouts = serve.NewController(s.serving)
	if err := s.serving.Refresh(ctx); err != nil {
		// A model that cannot load leaves its endpoint on the fallback;
		// the server still starts.
		s.log.Warn("serving", "err", err)
	}
	return nil
}

// servingLoop refreshes what serves and, on the leader, evaluates
// rollouts. A rollback takes effect at the tick that decides it.
func (s *Server) servingLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Reload)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.servingPass(ctx)
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			s.log.Warn("serving", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
}

// servingPass reloads what serves and, on the leader, judges the running
// rollouts.
func (s *Server) servingPass(ctx context.Context) error {
	err := s.serving.Refresh(ctx)
	if s.orch.Leading() {
		if _, terr := s.rollouts.Tick(ctx); terr != nil {
			err = errors.Join(err, terr)
		}
	}
	return err
}

// predict answers POST /api/v1/predict/{endpoint} {"key", "unit", "features"}.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) error {
	var req serve.Request
	if err := decodeJSON(r, &req, `a prediction request {"key", "unit", "features"}`); err != nil {
		return err
	}
	resp, err := s.serving.Predict(r.Context(), r.PathValue("endpoint"), req)
	if err != nil {
		return err
	}
	// The answer is encoded whole into a pooled buffer and sent in one
	// write with its length: a page encoded straight into the connection
	// went out chunked, in several writes, with a new encoder's buffer
	// each time.
	bp, _ := s.answerBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer func() {
		// An outsized answer's buffer is left to the collector.
		if cap(*bp) <= 1<<20 {
			s.answerBufs.Put(bp)
		}
	}()
	b, ok := resp.AppendJSON((*bp)[:0])
	if !ok {
		// A prediction AppendJSON does not know, or a value JSON cannot
		// hold (encoding/json says which).
		j, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		b = append(append(b[:0], j...), '\n')
	}
	*bp = b
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, err = w.Write(b)
	return err
}

func (s *Server) listEndpoints(w http.ResponseWriter, _ *http.Request) error {
	st := s.serving.Statuses()
	if st == nil {
		st = []serve.Status{}
	}
	return writeJSON(w, http.StatusOK, st)
}

// applyEndpoints takes a JSON array of endpoint specs.
func (s *Server) applyEndpoints(w http.ResponseWriter, r *http.Request) error {
	body, err := readJSON(r)
	if err != nil {
		return err
	}
	// Problems name the JSON field: [0].fallback.model.
	doc, err := serve.ParseJSON(body)
	// A document with problems of its own is still checked against the
	// store, so that every problem is reported at once.
	if doc == nil {
		return err
	}
	out, err := doc.Apply(r.Context(), s.st)
	if err != nil {
		return err
	}
	if err := s.serving.Refresh(r.Context()); err != nil {
		s.log.Warn("serving", "err", err)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.serving.StartRollout(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ro)
}

// abortRollout ends the endpoint's running rollout by hand:
// {"reason": "..."}.
func (s *Server) abortRollout(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(r, &body, `{"reason": "why the rollout is stopped"}`); err != nil {
		return err
	}
	ro, err := s.serving.AbortRollout(r.Context(), r.PathValue("name"), identity(r).Name, body.Reason)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ro)
}

// putFault injects a failure into an endpoint's model:
// {"kind": "error"|"timeout", "for": "1h", "percent": 100}.
func (s *Server) putFault(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Kind    string       `json:"kind"`
		For     dur.Duration `json:"for"`
		Percent float64      `json:"percent"`
	}
	if err := decodeJSON(r, &body, `a fault {"kind": "error" or "timeout", "for": "1h", "percent": 100}`); err != nil {
		return err
	}
	if body.Kind == "" {
		return &serve.BadRequest{Msg: `"kind" is required: error or timeout (DELETE the fault to clear it)`}
	}
	if body.For <= 0 {
		return &serve.BadRequest{Msg: `"for" is required: how long the fault lasts, such as "1h"`}
	}
	f := serve.Fault{Kind: body.Kind, Until: s.opt.Now().Add(body.For.D()), Percent: body.Percent}
	if err := s.serving.InjectFault(r.PathValue("name"), f); err != nil {
		return err
	}
	s.log.Warn("fault injected", "endpoint", r.PathValue("name"), "kind", f.Kind, "until", f.Until, "percent", f.Percent, "by", identity(r).Name)
	return writeJSON(w, http.StatusOK, s.serving.Faults()[r.PathValue("name")])
}

func (s *Server) deleteFault(w http.ResponseWriter, r *http.Request) error {
	if err := s.serving.InjectFault(r.PathValue("name"), serve.Fault{}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.st.Rollouts(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []store.Rollout{}
	}
	return writeJSON(w, http.StatusOK, rs)
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.st.Models(r.Context())
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []store.ModelSummary{}
	}
	return writeJSON(w, http.StatusOK, ms)
}

func (s *Server) modelVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.st.ModelVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

func (s *Server) modelVersion(w http.ResponseWriter, r *http.Request) error {
	v, err := registry.New(s.st).Resolve(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	trs, err := s.st.ModelTransitions(r.Context(), v.Model, v.Version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"version": v, "transitions": trs})
}

func (s *Server) registerModel(w http.ResponseWriter, r *http.Request) error {
	// Who registers is the token's holder: an audit record never takes
	// its actor from the body.
	var body struct {
		Artifact    string             `json:"artifact"`
		TrainingSet string             `json:"training_set"`
		Metrics     map[string]float64 `json:"metrics"`
		Tags        map[string]string  `json:"tags"`
		Description string             `json:"description"`
		Reason      string             `json:"reason"`
		Publish     bool               `json:"publish"`
	}
	if err := decodeJSON(r, &body, `a registration {"artifact", "training_set", "metrics", "tags", "description", "reason", "publish"}`); err != nil {
		return err
	}
	if body.Artifact == "" {
		return fault.Invalidf("artifact", "required (RUN/STEP/NAME)")
	}
	reg, err := registry.New(s.st).RegisterAndPublish(r.Context(), registry.Register{Model: r.PathValue("name"), Artifact: body.Artifact,
		TrainingSet: body.TrainingSet, Metrics: body.Metrics, Tags: body.Tags, Description: body.Description,
		Actor: identity(r).Name, Reason: body.Reason}, body.Publish)
	if err != nil {
		return err
	}
	if reg.Signal != nil {
		s.orch.WakeSignals()
	}
	v := reg.Version
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) transitionModel(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		To       store.ModelState `json:"to"`
		Reason   string           `json:"reason"`
		Decision json.RawMessage  `json:"decision"`
	}
	if err := decodeJSON(r, &body, `a transition {"to", "reason", "decision"}`); err != nil {
		return err
	}
	ver, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || ver <= 0 {
		return fault.Invalidf("version", "%q: a positive number", r.PathValue("version"))
	}
	var d *registry.Decision
	if len(body.Decision) > 0 && string(body.Decision) != "null" {
		if d, err = registry.ParseDecision(body.Decision); err != nil {
			return fault.Invalidf("decision", "%v", err)
		}
	}
	v, err := registry.New(s.st).Transition(r.Context(), r.PathValue("name"), ver, body.To, identity(r).Name, body.Reason, d)
	if err != nil {
		return err
	}
	if err := s.serving.Refresh(r.Context()); err != nil {
		s.log.Warn("serving", "err", err)
	}
	return writeJSON(w, http.StatusOK, v)
}
