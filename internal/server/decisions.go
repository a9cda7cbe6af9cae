package server

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/serve"
)

// decisionLog is the bandit's decision log: the decisions of every
// personalized page served and the rewards posted for them, one JSON line
// each, appended to HOME/logs/bandit/ENDPOINT.jsonl, which is what `baton
// bandit train` and `baton bandit evaluate` read. A page's lines go in one
// write on a file opened for appending, so they survive the process being
// killed (they are in the kernel's hands once written) and lines of pages
// served at once do not interleave.
type decisionLog struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
}

func newDecisionLog(home string) *decisionLog {
	return &decisionLog{dir: filepath.Join(home, "logs", "bandit"), files: map[string]*os.File{}}
}

// Path is the endpoint's log file.
func (d *decisionLog) path(endpoint string) string { return filepath.Join(d.dir, endpoint+".jsonl") }

func (d *decisionLog) append(endpoint string, write func(*bandit.LogWriter) error) error {
	var buf bytes.Buffer
	lw := bandit.NewLogWriter(&buf)
	if err := write(lw); err != nil {
		return err
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.files[endpoint]
	if f == nil {
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return fmt.Errorf("decision log: %w", err)
		}
		var err error
		if f, err = os.OpenFile(d.path(endpoint), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("decision log: %w", err)
		}
		d.files[endpoint] = f
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("decision log %s: %w", d.path(endpoint), err)
	}
	return nil
}

// decisions logs a served page's decisions (serve.Deps.Decisions).
func (d *decisionLog) decisions(endpoint string, p bandit.Page) error {
	return d.append(endpoint, func(lw *bandit.LogWriter) error {
		if p.Rows != nil {
			if err := lw.Decision(*p.Rows); err != nil {
				return err
			}
		}
		for _, a := range p.Artwork {
			if err := lw.Decision(a); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *decisionLog) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, f := range d.files {
		f.Close()
		delete(d.files, name)
	}
}

// maxRewards bounds one request's rewards.
const maxRewards = 10_000

// postRewards appends rewards of a personalized endpoint's decisions to
// its decision log: a JSON array of {"id", "reward"}, all checked before
// any is written.
func (s *Server) postRewards(w http.ResponseWriter, r *http.Request) error {
	// The body is read first, so that an over-long one is refused (413)
	// whatever the endpoint, as on every route.
	var body []struct {
		ID     string   `json:"id"`
		Reward *float64 `json:"reward"`
	}
	if err := decodeJSON(r, &body, `[{"id": "DECISION_ID", "reward": NUMBER}]`); err != nil {
		return err
	}
	name := r.PathValue("name")
	spec, ok := s.serving.Endpoint(name)
	if !ok {
		return fmt.Errorf("endpoint %q: %w", name, serve.ErrUnknownEndpoint)
	}
	if spec.Recommend == nil || spec.Recommend.Personalize == nil {
		return fault.Errorf(fault.Invalid, "endpoint %s does not personalize (no recommend.personalize): it makes no decisions to reward", name)
	}
	if len(body) == 0 || len(body) > maxRewards {
		return fault.Invalidf("body", "%d rewards: send 1 to %d at once", len(body), maxRewards)
	}
	now := s.opt.Now()
	rs := make([]bandit.Reward, len(body))
	for i, b := range body {
		switch {
		case b.ID == "" || len(b.ID) > 200:
			return fault.Invalidf(fmt.Sprintf("[%d].id", i), "a decision id (a page's decision.id, with /rows or /art/TITLE) of 1 to 200 characters")
		case b.Reward == nil:
			return fault.Invalidf(fmt.Sprintf("[%d].reward", i), "missing: the decision's reward, a number")
		}
		if err := bandit.CheckReward(*b.Reward); err != nil {
			return fault.Invalidf(fmt.Sprintf("[%d].reward", i), "%v", err)
		}
		rs[i] = bandit.Reward{ID: b.ID, Value: *b.Reward, At: now}
	}
	err := s.decisions.append(name, func(lw *bandit.LogWriter) error {
		for _, rw := range rs {
			if err := lw.Reward(rw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"accepted": len(rs), "log": s.decisions.path(name)})
}
