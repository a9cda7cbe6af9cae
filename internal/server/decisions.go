package server

import (
	"bytes"
	"errors"
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
// bandit train` and `baton bandit evaluate` read. A page's lines (its
// context once, then its decisions naming it) go in one write on a file
// opened for appending, so they survive the process being killed (they
// are in the kernel's hands once written) and lines of pages served at
// once do not interleave.
//
// The file is rotated by size: before a write would take it past
// maxBytes it becomes ENDPOINT.jsonl.1 (the older ones shift to .2, ...,
// and the one past keep is removed), and a new file starts. A page's lines
// never straddle two files; readers (bandit.ReadLogFiles) read the
// rotated files with the current one, so a reward joins its decision
// across a rotation.
type decisionLog struct {
	dir      string
	maxBytes int64 // rotate before a write would pass this size
	keep     int   // rotated files kept
	mu       sync.Mutex
	files    map[string]*logFile
}

type logFile struct {
	f    *os.File
	size int64
}

// The decision log's rotation: 64 MiB a file, 8 rotated files kept, so an
// endpoint's log holds at most 576 MiB.
const (
	decisionLogMaxBytes = 64 << 20
	decisionLogKeep     = 8
)

func newDecisionLog(home string) *decisionLog {
	return &decisionLog{dir: filepath.Join(home, "logs", "bandit"), maxBytes: decisionLogMaxBytes, keep: decisionLogKeep,
		files: map[string]*logFile{}}
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
	lf := d.files[endpoint]
	if lf != nil && lf.size > 0 && lf.size+int64(buf.Len()) > d.maxBytes {
		// A failed rotation drops the open file: the next write opens
		// (and, if need be, rotates) again.
		delete(d.files, endpoint)
		lf.f.Close()
		if err := d.rotate(endpoint); err != nil {
			return err
		}
		lf = nil
	}
	if lf == nil {
		var err error
		if lf, err = d.open(endpoint, int64(buf.Len())); err != nil {
			return err
		}
		d.files[endpoint] = lf
	}
	n, err := lf.f.Write(buf.Bytes())
	lf.size += int64(n)
	if err != nil {
		return fmt.Errorf("decision log %s: %w", d.path(endpoint), err)
	}
	return nil
}

// open opens the endpoint's log for appending, rotating it first when a
// write of next bytes would take it past the limit (a file left large by
// an earlier process).
func (d *decisionLog) open(endpoint string, next int64) (*logFile, error) {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	path := d.path(endpoint)
	if st, err := os.Stat(path); err == nil && st.Size() > 0 && st.Size()+next > d.maxBytes {
		if err := d.rotate(endpoint); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decision log %s: %w", path, err)
	}
	return &logFile{f: f, size: st.Size()}, nil
}

// rotate shifts ENDPOINT.jsonl to .1, .1 to .2, ..., removing the file
// past keep. The file must be closed.
func (d *decisionLog) rotate(endpoint string) error {
	path := d.path(endpoint)
	if err := os.Remove(bandit.RotatedName(path, d.keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("decision log rotation: %w", err)
	}
	for n := d.keep - 1; n >= 1; n-- {
		if err := os.Rename(bandit.RotatedName(path, n), bandit.RotatedName(path, n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("decision log rotation: %w", err)
		}
	}
	if err := os.Rename(path, bandit.RotatedName(path, 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("decision log rotation: %w", err)
	}
	return nil
}

// decisions logs a served page's decisions (serve.Deps.Decisions): the
// page's context once, then its decisions.
func (d *decisionLog) decisions(endpoint string, p bandit.Page) error {
	return d.append(endpoint, func(lw *bandit.LogWriter) error { return lw.Page(p) })
}

func (d *decisionLog) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, lf := range d.files {
		lf.f.Close()
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
