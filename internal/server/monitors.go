package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/baton-ml/baton/internal/monitor"
)

// startMonitors makes the monitors' runner over what the server holds:
// the store, the feature engine, the blobs, serving's samples and page
// statistics, its clock and its publish.
func (s *Server) startMonitors(context.Context) error {
	s.monitors = monitor.NewRunner(monitor.Deps{Store: s.st, Features: s.features, Blobs: s.blobs,
		Samples: s.serving.Collector, Pages: s.serving.Pages, Publish: s.publish, Log: s.log, Reg: s.m.reg})
	return nil
}

// EvaluateMonitors evaluates, once, every monitor due at the server's
// clock (Options.Now): the body of the leader's monitor loop, for a
// driver that moves a simulated clock and wants the evaluation to happen
// at a time it chooses. A slot already answered (by the loop, or another
// server) is not evaluated again.
func (s *Server) EvaluateMonitors(ctx context.Context) error {
	if s.monitors == nil {
		return errors.New("the server is not running: its monitors are not started")
	}
	_, err := s.monitors.EvaluateDue(ctx, s.opt.Now())
	return err
}

// monitorLoop evaluates the due monitors on the leader every poll.
func (s *Server) monitorLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Poll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.orch.Leading() {
			continue
		}
		err := s.EvaluateMonitors(ctx)
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			s.log.Warn("monitors", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
}

// monitorStatus is a monitor with its newest result.
type monitorStatus struct {
	Spec monitor.Spec    `json:"spec"`
	Last *monitor.Result `json:"last,omitempty"`
}

func (s *Server) listMonitors(w http.ResponseWriter, r *http.Request) error {
	specs, err := monitor.Load(r.Context(), s.st)
	if err != nil {
		return err
	}
	out := make([]monitorStatus, 0, len(specs))
	for _, sp := range specs {
		st := monitorStatus{Spec: sp}
		rs, err := monitor.Results(r.Context(), s.st, sp.Name, 1)
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			st.Last = &rs[0]
		}
		out = append(out, st)
	}
	return writeJSON(w, http.StatusOK, out)
}

// applyMonitors answers POST /api/v1/monitors: a JSON array of monitor
// specs, checked whole against the store before any is stored (the
// function `baton monitor apply` calls).
func (s *Server) applyMonitors(w http.ResponseWriter, r *http.Request) error {
	body, err := readJSON(r)
	if err != nil {
		return err
	}
	doc, err := monitor.ParseJSON(body)
	// A document with problems of its own is still checked against the
	// store, so that every problem is reported at once.
	if doc == nil {
		return err
	}
	out, err := doc.Apply(r.Context(), s.st)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// monitorResults answers GET /api/v1/monitors/{name}/results?limit=N:
// the newest results first.
func (s *Server) monitorResults(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 20)
	if err != nil {
		return err
	}
	if _, err := monitor.Find(r.Context(), s.st, r.PathValue("name")); err != nil {
		return err
	}
	rs, err := monitor.Results(r.Context(), s.st, r.PathValue("name"), min(max(limit, 1), 1000))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rs)
}

// evaluateMonitor answers POST /api/v1/monitors/{name}/evaluate: the
// monitor evaluated now, on this server's data (its served pages and
// samples are in its memory), stored as a manual result, a breach
// publishing its signal.
func (s *Server) evaluateMonitor(w http.ResponseWriter, r *http.Request) error {
	// Nothing to say but the name: a body with anything in it is refused,
	// not ignored.
	if err := decodeOptional(r, &struct{}{}, "empty, or {}"); err != nil {
		return err
	}
	if s.monitors == nil {
		return errors.New("the monitors are not started")
	}
	res, err := s.monitors.Evaluate(r.Context(), r.PathValue("name"), s.opt.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
