package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/canary"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

// The rollout actor recorded on the transitions it makes.
const rolloutActor = "baton-rollout"

// Step is one evaluation of a rollout, kept in its history.
type Step struct {
	At       time.Time `json:"at"`
	Stage    int       `json:"stage"`
	Share    float64   `json:"share"`
	Canary   int       `json:"canary_requests"`
	Baseline int       `json:"baseline_requests"`
	Score    float64   `json:"score"`
	Result   string    `json:"result"` // pass, marginal, fail, or nodata
	Action   string    `json:"action"` // advance, hold, promote, rollback
	Detail   string    `json:"detail,omitempty"`
}

// StartRollout starts rolling out the endpoint's canary version (the one
// version of its model in state canary) against its production version,
// from the first stage.
func (s *Service) StartRollout(ctx context.Context, endpoint string) (store.Rollout, error) {
	spec, ok := s.Endpoint(endpoint)
	if !ok {
		return store.Rollout{}, fmt.Errorf("endpoint %q: %w", endpoint, ErrUnknownEndpoint)
	}
	r, err := BeginRollout(ctx, s.d.Store, spec, s.d.Now())
	if err != nil {
		return r, err
	}
	return r, s.Refresh(ctx)
}

// ErrNoRollout is an abort of an endpoint with no rollout running
// (errors.Is; a conflict with the endpoint's state).
var ErrNoRollout = fault.New(fault.Conflict, "no rollout is running")

// AbortRollout ends the endpoint's running rollout by hand: its canary
// version goes back to registered (recorded with actor and reason), the
// rollout is marked rolled back with the abort in its history, and
// canary_failed says so to whoever subscribes. Serving stops routing to
// the canary at once.
func (s *Service) AbortRollout(ctx context.Context, endpoint, actor, reason string) (store.Rollout, error) {
	if strings.TrimSpace(reason) == "" {
		return store.Rollout{}, &BadRequest{Msg: `"reason" is required: why the rollout is stopped`}
	}
	rs, err := s.d.Store.Rollouts(ctx, endpoint)
	if err != nil {
		return store.Rollout{}, err
	}
	var r *store.Rollout
	for i := range rs {
		if rs[i].Status == store.RolloutRunning {
			r = &rs[i]
		}
	}
	if r == nil {
		return store.Rollout{}, fmt.Errorf("endpoint %s: %w (baton rollout status %s)", endpoint, ErrNoRollout, endpoint)
	}
	hist, err := history(*r)
	if err != nil {
		return store.Rollout{}, err
	}
	why := fmt.Sprintf("rollout %d aborted by %s at %g%%: %s", r.ID, actor, r.Stages[r.Stage], reason)
	hist = append(hist, Step{At: s.d.Now(), Stage: r.Stage, Share: r.Stages[r.Stage], Result: "aborted", Action: "rollback", Detail: why})
	hb, err := json.Marshal(hist)
	if err != nil {
		return store.Rollout{}, err
	}
	// The registry moves first, as the controller does: a process that
	// dies between the two leaves a rollout whose canary already moved,
	// which the next abort or evaluation finds.
	if _, err := registry.New(s.d.Store).RolloutTransition(ctx, r.ID, r.Model, r.CanaryVersion, store.ModelRegistered, actor, why); err != nil &&
		!alreadyThere(ctx, s.d.Store, r.Model, r.CanaryVersion, store.ModelRegistered) {
		return store.Rollout{}, fmt.Errorf("abort rollout %d: %w", r.ID, err)
	}
	out, err := s.d.Store.UpdateRollout(ctx, r.ID, r.Stage, r.Stage, store.RolloutRolledBack, hb)
	if err != nil {
		return out, fmt.Errorf("abort rollout %d: %w", r.ID, err)
	}
	if s.d.Publish != nil {
		params := map[string]any{"model": r.Model, "version": strconv.Itoa(r.CanaryVersion), "score": 0.0, "reason": why}
		if err := s.d.Publish(ctx, "canary_failed", fmt.Sprintf("canary_failed/%s/%d/%d", r.Model, r.CanaryVersion, r.ID), params); err != nil {
			s.d.Log.Warn("publish canary_failed", "err", err)
		}
	}
	return out, s.Refresh(ctx)
}

// LoadEndpoint reads a stored endpoint's spec, with its defaults.
func LoadEndpoint(ctx context.Context, st store.ServeStore, name string) (Endpoint, error) {
	eps, err := st.Endpoints(ctx)
	if err != nil {
		return Endpoint{}, err
	}
	for _, e := range eps {
		if e.Name != name {
			continue
		}
		return Stored(e)
	}
	return Endpoint{}, fmt.Errorf("endpoint %q: %w", name, ErrUnknownEndpoint)
}

// RolloutStore is what starting a rollout needs: the endpoint's model
// versions and the rollouts.
type RolloutStore interface {
	store.ModelStore
	store.ServeStore
}

// BeginRollout records a rollout of the endpoint's canary version against
// its production version, starting at now; the leading server's
// Controller judges and moves it (no server need be running to start
// one). spec must have its defaults (Service.Endpoint, LoadEndpoint).
func BeginRollout(ctx context.Context, st RolloutStore, spec Endpoint, now time.Time) (store.Rollout, error) {
	vs, err := st.ModelVersions(ctx, spec.Model)
	if err != nil {
		return store.Rollout{}, err
	}
	var can, base []int
	for _, v := range vs {
		switch v.State {
		case store.ModelCanary:
			can = append(can, v.Version)
		case store.ModelProduction:
			base = append(base, v.Version)
		}
	}
	switch {
	case len(can) == 0:
		return store.Rollout{}, &BadRequest{Msg: fmt.Sprintf("model %s has no version in state canary: baton model transition %s N canary --reason ...", spec.Model, spec.Model)}
	case len(can) > 1:
		return store.Rollout{}, &BadRequest{Msg: fmt.Sprintf("model %s has %d versions in state canary (%v): roll out one at a time", spec.Model, len(can), can)}
	case len(base) == 0:
		return store.Rollout{}, &BadRequest{Msg: fmt.Sprintf("model %s has no production version to judge the canary against", spec.Model)}
	}
	if err := checkedBefore(ctx, st, spec, can[0]); err != nil {
		return store.Rollout{}, err
	}
	return st.StartRollout(ctx, store.Rollout{Endpoint: spec.Name, Model: spec.Model, CanaryVersion: can[0],
		BaselineVersion: base[len(base)-1], Stages: spec.Rollout.Stages, StartedAt: now})
}

// checkedBefore refuses a second canary check of a version whose check
// already passed on this endpoint: it waits in canary for its promotion
// (PromoteChecked), and another check would not move it either.
func checkedBefore(ctx context.Context, st RolloutStore, spec Endpoint, version int) error {
	if spec.Rollout.Promotes() {
		return nil
	}
	r, ok, err := PassedCheck(ctx, st, spec.Name, spec.Model, version)
	if err != nil || !ok {
		return err
	}
	return &BadRequest{Msg: fmt.Sprintf("model %s version %d passed its canary check (rollout %d) and waits in canary for its promotion", spec.Model, version, r.ID)}
}

// PassedCheck finds the passed rollout of version on the endpoint: a
// canary check (or a full rollout) it passed.
func PassedCheck(ctx context.Context, st store.ServeStore, endpoint, model string, version int) (store.Rollout, bool, error) {
	rs, err := st.Rollouts(ctx, endpoint)
	if err != nil {
		return store.Rollout{}, false, err
	}
	for _, r := range rs {
		if r.Model == model && r.CanaryVersion == version && r.Status == store.RolloutPassed {
			return r, true, nil
		}
	}
	return store.Rollout{}, false, nil
}

// Controller evaluates running rollouts every interval: it judges the
// canary's samples of the interval against the baseline's and advances,
// holds or rolls back. Only one process (the leading server) should run it;
// the store's compare-and-set keeps a second one from acting twice anyway.
// It keeps no state of its own: when a rollout was last evaluated and its
// streak of marginal results are read from the rollout's stored history,
// so a restart or a new leader carries on where the last one stopped.
type Controller struct {
	s  *Service
	mu sync.Mutex
}

// NewController makes the rollout controller of s.
func NewController(s *Service) *Controller {
	return &Controller{s: s}
}

// ErrCorruptHistory is a rollout whose stored history cannot be read: the
// rollout is not evaluated (its clock and hold streak are unknown) rather
// than started over.
var ErrCorruptHistory = errors.New("rollout history is corrupt")

// history decodes a rollout's stored steps.
func history(r store.Rollout) ([]Step, error) {
	var hist []Step
	if len(r.History) == 0 || string(r.History) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(r.History, &hist); err != nil {
		return nil, fmt.Errorf("rollout %d of endpoint %s: %v: %w", r.ID, r.Endpoint, err, ErrCorruptHistory)
	}
	return hist, nil
}

// windowStart is when a rollout's current window started: its last evaluation,
// else its start.
func windowStart(r store.Rollout, hist []Step) time.Time {
	if len(hist) > 0 {
		return hist[len(hist)-1].At
	}
	return r.StartedAt
}

// holds is the streak of marginal results since the last pass (windows
// without data neither break nor extend it).
func holds(hist []Step) int {
	n := 0
	for i := len(hist) - 1; i >= 0; i-- {
		switch hist[i].Result {
		case "marginal":
			n++
		case "nodata":
		default:
			return n
		}
	}
	return n
}

// Tick evaluates every running rollout whose interval has passed. It
// returns the steps it took.
func (c *Controller) Tick(ctx context.Context) ([]Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, err := c.s.d.Store.Rollouts(ctx, "")
	if err != nil {
		return nil, err
	}
	now := c.s.d.Now()
	var steps []Step
	var errs []error
	for _, r := range rs {
		if r.Status != store.RolloutRunning {
			continue
		}
		spec, ok := c.s.Endpoint(r.Endpoint)
		if !ok {
			continue
		}
		hist, err := history(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		from := windowStart(r, hist)
		if now.Sub(from) < spec.Rollout.Interval.D() {
			continue
		}
		st, err := c.evaluate(ctx, r, hist, spec, from, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		steps = append(steps, st)
	}
	if len(steps) > 0 {
		errs = append(errs, c.s.Refresh(ctx))
	}
	return steps, errors.Join(errs...)
}

func (c *Controller) evaluate(ctx context.Context, r store.Rollout, hist []Step, spec Endpoint, from, to time.Time) (Step, error) {
	cfg := spec.Rollout
	canM := c.s.Collector.Metrics(r.Endpoint, r.CanaryVersion, from, to)
	baseM := c.s.Collector.Metrics(r.Endpoint, r.BaselineVersion, from, to)
	if r.Stages[r.Stage] >= 100 && len(baseM["latency_ms"]) < cfg.MinRequests {
		// At 100% the baseline serves nobody: judge against the most
		// recent requests it served (the collector keeps the last ones).
		baseM = c.s.Collector.Metrics(r.Endpoint, r.BaselineVersion, time.Time{}, to)
	}
	st := Step{At: to, Stage: r.Stage, Share: r.Stages[r.Stage], Canary: len(canM["latency_ms"]), Baseline: len(baseM["latency_ms"])}
	next, status := r.Stage, store.RolloutRunning
	if st.Canary < cfg.MinRequests || st.Baseline < cfg.MinRequests {
		st.Result, st.Action = "nodata", "hold"
		st.Detail = fmt.Sprintf("%d canary and %d baseline requests; %d each needed", st.Canary, st.Baseline, cfg.MinRequests)
	} else {
		res := canary.Judge(chunks(baseM), chunks(canM), *cfg.Judge)
		st.Score, st.Result = res.Score, string(res.Result)
		for _, m := range res.Metrics {
			if m.Classification != "Pass" && m.Classification != "NoData" {
				st.Detail += fmt.Sprintf("%s %s; ", m.Name, m.Classification)
			}
		}
		switch res.Result {
		case "pass":
			switch {
			case r.Stage < len(r.Stages)-1:
				st.Action, next = "advance", r.Stage+1
			case cfg.Promotes():
				st.Action, status = "promote", store.RolloutPassed
			default:
				st.Action, status = "checked", store.RolloutPassed
			}
		case "marginal":
			streak := holds(hist) + 1
			st.Action = "hold"
			if streak >= cfg.MaxHolds {
				st.Action, status = "rollback", store.RolloutRolledBack
				st.Detail += fmt.Sprintf("marginal %d times in a row", streak)
			}
		default:
			st.Action, status = "rollback", store.RolloutRolledBack
		}
	}
	hist = append(hist[:len(hist):len(hist)], st)
	hb, err := json.Marshal(hist)
	if err != nil {
		// A history that cannot be stored must not be stored as nothing:
		// the next evaluation would start the clock over.
		return st, fmt.Errorf("rollout %d history: %w", r.ID, err)
	}
	reg := registry.New(c.s.d.Store)
	score := strconv.FormatFloat(st.Score, 'f', 2, 64)
	params := map[string]any{"model": r.Model, "version": strconv.Itoa(r.CanaryVersion), "score": st.Score}
	// The registry moves first: if the process dies before the rollout is
	// marked, the next evaluation finds the canary already moved (its
	// transition refuses to run twice) rather than a finished rollout
	// whose canary never moved.
	var signal, sigID string
	switch status {
	case store.RolloutPassed:
		signal, sigID = "canary_passed", fmt.Sprintf("canary_passed/%s/%d/%d", r.Model, r.CanaryVersion, r.ID)
		if !cfg.Promotes() {
			// A canary check: the version stays canary for an
			// experiment or a person to promote.
			break
		}
		reason := fmt.Sprintf("rollout %d passed every stage (%v%%), last score %s against version %d", r.ID, r.Stages, score, r.BaselineVersion)
		if _, err := reg.RolloutTransition(ctx, r.ID, r.Model, r.CanaryVersion, store.ModelProduction, rolloutActor, reason); err != nil && !alreadyThere(ctx, c.s.d.Store, r.Model, r.CanaryVersion, store.ModelProduction) {
			return st, fmt.Errorf("promote %s version %d: %w", r.Model, r.CanaryVersion, err)
		}
	case store.RolloutRolledBack:
		reason := fmt.Sprintf("rollout %d rolled back at %g%%: %s (score %s) %s", r.ID, st.Share, st.Result, score, st.Detail)
		if _, err := reg.RolloutTransition(ctx, r.ID, r.Model, r.CanaryVersion, store.ModelRegistered, rolloutActor, reason); err != nil && !alreadyThere(ctx, c.s.d.Store, r.Model, r.CanaryVersion, store.ModelRegistered) {
			return st, fmt.Errorf("roll back %s version %d: %w", r.Model, r.CanaryVersion, err)
		}
		params["reason"] = reason
		signal, sigID = "canary_failed", fmt.Sprintf("canary_failed/%s/%d/%d", r.Model, r.CanaryVersion, r.ID)
	}
	if _, err := c.s.d.Store.UpdateRollout(ctx, r.ID, r.Stage, next, status, hb); err != nil {
		return st, err
	}
	if signal != "" {
		// The id makes the signal once-only however often this runs.
		c.publish(ctx, signal, sigID, params)
	}
	c.s.d.Log.Info("rollout", "endpoint", r.Endpoint, "rollout", r.ID, "stage", r.Stage, "share", st.Share,
		"result", st.Result, "score", st.Score, "action", st.Action)
	return st, nil
}

func (c *Controller) publish(ctx context.Context, name, id string, params map[string]any) {
	if c.s.d.Publish == nil {
		return
	}
	if err := c.s.d.Publish(ctx, name, id, params); err != nil {
		c.s.d.Log.Warn("publish "+name, "err", err)
	}
}

// chunks turns per-request samples into the judge's series: consecutive
// requests in up to maxChunks groups of at least minChunk, each reduced to
// its mean. Kayenta judges time series of rates and means, not single
// requests: per request, an error rate under one half has a median shift of
// 0 and would pass however bad it is.
func chunks(m map[string][]float64) map[string][]float64 {
	const maxChunks, minChunk = 30, 5
	out := make(map[string][]float64, len(m))
	for name, xs := range m {
		n := len(xs)
		k := max(minChunk, (n+maxChunks-1)/maxChunks)
		var series []float64
		for i := 0; i+k <= n || (i < n && len(series) == 0); i += k {
			end := min(i+k, n)
			sum := 0.0
			for _, x := range xs[i:end] {
				sum += x
			}
			series = append(series, sum/float64(end-i))
		}
		out[name] = series
	}
	return out
}

// alreadyThere says whether a version is already in state (an earlier
// evaluation moved it, then died before marking the rollout).
func alreadyThere(ctx context.Context, st store.ModelStore, model string, version int, state store.ModelState) bool {
	v, err := st.ModelVersion(ctx, model, version)
	return err == nil && v.State == state
}
