package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/online"
)

// openFeatures starts the streaming path: the engine over the registered
// definitions, the online store (embedded, rebuilt from the event logs, or
// Redis), and NATS ingest when configured.
func (s *Server) openFeatures(ctx context.Context) error {
	cat, err := feature.Load(ctx, s.st)
	if err != nil {
		return fmt.Errorf("load feature definitions: %w", err)
	}
	onlineStore, err := online.Open(ctx, s.opt.Online)
	if err != nil {
		return err
	}
	m := feature.NewMetrics(s.m.reg)
	s.features = feature.NewEngine(cat, filepath.Join(s.home.Dir, "features"), onlineStore, m)
	s.features.SetClock(s.opt.Now)
	// The server applies the whole log at start, to Redis too: a crash
	// between a batch's fsync and its Redis write must not lose it, and
	// Redis applies are idempotent (a member is its log position).
	if err := s.features.Replay(ctx); err != nil {
		return err
	}
	s.featuresPrint = featurePrint(cat)
	return nil
}

func featurePrint(c *feature.Catalog) string {
	b, _ := json.Marshal(c.Defs())
	return string(b)
}

// reloadFeatures swaps in newly applied feature definitions.
func (s *Server) reloadFeatures(ctx context.Context) {
	if s.features == nil {
		return
	}
	cat, err := feature.Load(ctx, s.st)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: not a failure
		}
		s.log.Error("reload feature definitions", "err", err)
		return
	}
	if p := featurePrint(cat); p != s.featuresPrint {
		s.features.SetCatalog(cat)
		s.featuresPrint = p
		s.log.Info("feature definitions reloaded", "features", len(cat.Features))
	}
}

// freshnessLoop raises an alert when a streaming feature is staler than
// its SLA: a log line and the baton_feature_stale gauge each time it goes
// stale, and, for features with stale_signal, a feature_stale signal whose
// id names the feature and the moment it went stale (one signal per
// episode, whatever the number of servers).
func (s *Server) freshnessLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.freshnessPass(ctx)
	}
}

// freshnessPass applies what other processes appended to the event logs
// and warns (and publishes feature_stale, once per breach) about features
// past their SLA.
func (s *Server) freshnessPass(ctx context.Context) {
	s.staleMu.Lock()
	defer s.staleMu.Unlock()
	if s.stale == nil {
		s.stale = map[string]bool{}
	}
	stale := s.stale
	// Events other processes appended (a CLI ingest into this home)
	// reach the online store, and count as fresh.
	if err := s.features.Tail(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("tail the event logs", "err", err)
	}
	now := s.opt.Now()
	for _, st := range s.features.Staleness(now) {
		was := stale[st.Feature]
		stale[st.Feature] = st.Breached
		if !st.Breached || was {
			continue
		}
		age := "no event since the server started"
		if st.Age >= 0 {
			age = st.Age.Round(time.Millisecond).String()
		}
		s.log.Warn("feature stale", "feature", st.Feature, "source", st.Source, "sla", st.SLA, "age", age)
		if st.Signal {
			s.publishStale(ctx, st, now)
		}
	}
}

func (s *Server) publishStale(ctx context.Context, st feature.Stale, now time.Time) {
	params := map[string]any{"feature": st.Feature}
	if st.Age >= 0 {
		params["staleness_seconds"] = st.Age.Seconds()
	}
	if err := s.publish(ctx, "feature_stale", fmt.Sprintf("feature_stale/%s/%d", st.Feature, now.Unix()), params); err != nil {
		s.log.Error("publish feature_stale", "feature", st.Feature, "err", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// ingestEvents takes a batch of events for one source: a JSON array of
// event objects, or JSON lines. Bad events are rejected with reasons (and
// dead-lettered); the rest are accepted.
func (s *Server) ingestEvents(w http.ResponseWriter, r *http.Request) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	body := bytes.TrimSpace(raw)
	if len(body) > 0 && body[0] == '[' {
		// One decoder reads every JSON body; JSON lines go to the feature
		// decoder as they come.
		var evs []json.RawMessage
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := decodeJSON(r, &evs, "a JSON array of events, or JSON lines"); err != nil {
			return err
		}
		var lines bytes.Buffer
		for i, ev := range evs {
			// One line per event: compact any pretty-printed object.
			if err := json.Compact(&lines, ev); err != nil {
				return fault.Invalidf(fmt.Sprintf("[%d]", i), "%v", err)
			}
			lines.WriteByte('\n')
		}
		body = lines.Bytes()
	} else if len(body) > 0 && body[0] != '{' {
		return fault.Invalidf("", "the body is a JSON array of events, or JSON lines")
	}
	res, err := s.features.Ingest(r.Context(), r.PathValue("source"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// onlineFeatures answers a look-up: GET /api/v1/features/online/{key}
// ?feature=NAME (repeatable) &at=TIME.
func (s *Server) onlineFeatures(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	at := s.opt.Now()
	if v := q.Get("at"); v != "" {
		us, err := feature.ParseTime(v)
		if err != nil {
			return fault.Invalidf("at", "%v", err)
		}
		at = time.UnixMicro(us)
	}
	feats, err := s.features.Catalog().Select(q["feature"])
	if err != nil {
		return err
	}
	v, err := s.features.Get(r.Context(), r.PathValue("key"), feats, at)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func (s *Server) listFeatures(w http.ResponseWriter, r *http.Request) error {
	specs, err := s.st.FeatureSpecs(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, specs)
}

// freshness is the streaming features against their SLAs for the web
// UI; nil before the engine is open (it opens before the API serves).
func (s *Server) freshness(now time.Time) []feature.Stale {
	if s.features == nil {
		return nil
	}
	return s.features.Staleness(now)
}

func (s *Server) featureFreshness(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, s.features.Staleness(s.opt.Now()))
}
