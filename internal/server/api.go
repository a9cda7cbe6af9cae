package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/jsonkey"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

// Body limits. Every route reads at most its limit (maxBody unless the
// route says otherwise); flow files and batches of events are larger.
const (
	maxBody       = 1 << 20
	maxFlowBody   = 4 << 20
	maxEventsBody = 16 << 20
)

// route is one endpoint. The table is the source of truth that the OpenAPI
// file is tested against.
type route struct {
	method, path string
	role         store.Role // "" for no token at all
	h            func(w http.ResponseWriter, r *http.Request) error
	limit        int64 // body limit; 0 means maxBody
}

func (s *Server) routes() []route {
	return []route{
		{"GET", "/healthz", "", s.healthz, 0},
		{"GET", "/metrics", "", nil, 0},
		{"GET", "/login", "", s.login, 0},
		{"GET", "/api/v1/openapi.yaml", "", s.openapi, 0},
		{"GET", "/api/v1/flows", store.RoleViewer, s.listFlows, 0},
		{"POST", "/api/v1/flows", store.RoleOperator, s.applyFlows, maxFlowBody},
		{"GET", "/api/v1/flows/{name}", store.RoleViewer, s.getFlow, 0},
		{"GET", "/api/v1/flows/{name}/versions", store.RoleViewer, s.flowVersions, 0},
		{"POST", "/api/v1/flows/{name}/runs", store.RoleOperator, s.createRun, 0},
		{"POST", "/api/v1/flows/{name}/unblock", store.RoleOperator, s.unblock, 0},
		{"GET", "/api/v1/runs", store.RoleViewer, s.listRuns, 0},
		{"GET", "/api/v1/runs/{id}", store.RoleViewer, s.getRun, 0},
		{"POST", "/api/v1/runs/{id}/cancel", store.RoleOperator, s.cancelRun, 0},
		{"POST", "/api/v1/runs/{id}/resume", store.RoleOperator, s.resumeRun, 0},
		{"GET", "/api/v1/runs/{id}/logs", store.RoleViewer, s.runLogs, 0},
		{"GET", "/api/v1/artifacts/{path...}", store.RoleViewer, s.getArtifact, 0},
		{"GET", "/api/v1/signals", store.RoleViewer, s.listSignals, 0},
		{"POST", "/api/v1/signals", store.RoleOperator, s.publishSignal, 0},
		{"GET", "/api/v1/signals/{id}", store.RoleViewer, s.getSignal, 0},
		{"GET", "/api/v1/lineage/signals/{name}", store.RoleViewer, s.signalLineage, 0},
		{"GET", "/api/v1/lineage/flows/{name}", store.RoleViewer, s.flowLineage, 0},
		{"GET", "/api/v1/lineage/runs/{id}", store.RoleViewer, s.runLineage, 0},
		{"GET", "/api/v1/lineage/runs/{id}/openlineage", store.RoleViewer, s.openLineage, 0},
		{"GET", "/api/v1/features", store.RoleViewer, s.listFeatures, 0},
		{"GET", "/api/v1/features/freshness", store.RoleViewer, s.featureFreshness, 0},
		{"GET", "/api/v1/features/online/{key}", store.RoleViewer, s.onlineFeatures, 0},
		{"POST", "/api/v1/features/events/{source}", store.RoleOperator, s.ingestEvents, maxEventsBody},
		{"POST", "/api/v1/predict/{endpoint}", store.RoleViewer, s.predict, 0},
		{"GET", "/api/v1/endpoints", store.RoleViewer, s.listEndpoints, 0},
		{"POST", "/api/v1/endpoints", store.RoleOperator, s.applyEndpoints, 0},
		{"GET", "/api/v1/endpoints/{name}/rollouts", store.RoleViewer, s.listRollouts, 0},
		{"POST", "/api/v1/endpoints/{name}/rollouts", store.RoleOperator, s.startRollout, 0},
		{"POST", "/api/v1/endpoints/{name}/rollouts/abort", store.RoleOperator, s.abortRollout, 0},
		{"POST", "/api/v1/endpoints/{name}/rewards", store.RoleOperator, s.postRewards, 0},
		{"PUT", "/api/v1/endpoints/{name}/fault", store.RoleOperator, s.putFault, 0},
		{"DELETE", "/api/v1/endpoints/{name}/fault", store.RoleOperator, s.deleteFault, 0},
		{"GET", "/api/v1/models", store.RoleViewer, s.listModels, 0},
		{"GET", "/api/v1/models/{name}/versions", store.RoleViewer, s.modelVersions, 0},
		{"POST", "/api/v1/models/{name}/versions", store.RoleOperator, s.registerModel, 0},
		{"GET", "/api/v1/models/{name}/versions/{version}", store.RoleViewer, s.modelVersion, 0},
		{"POST", "/api/v1/models/{name}/versions/{version}/transitions", store.RoleOperator, s.transitionModel, 0},
		{"GET", "/api/v1/experiments", store.RoleViewer, s.listExperiments, 0},
		{"POST", "/api/v1/experiments", store.RoleOperator, s.applyExperiments, 0},
		{"GET", "/api/v1/experiments/{name}/assign", store.RoleViewer, s.assignUnit, 0},
		{"POST", "/api/v1/experiments/{name}/assign", store.RoleOperator, s.exposeUnit, 0},
		{"POST", "/api/v1/experiments/{name}/exposures", store.RoleOperator, s.ingestExposures, maxEventsBody},
		{"POST", "/api/v1/experiments/{name}/metrics", store.RoleOperator, s.ingestExpMetrics, maxEventsBody},
		{"GET", "/api/v1/experiments/{name}/report", store.RoleViewer, s.experimentReport, 0},
		{"POST", "/api/v1/experiments/{name}/status", store.RoleOperator, s.setExperimentStatus, 0},
		{"POST", "/api/v1/experiments/{name}/promote", store.RoleOperator, s.promoteExperiment, 0},
		{"GET", "/api/v1/monitors", store.RoleViewer, s.listMonitors, 0},
		{"POST", "/api/v1/monitors", store.RoleOperator, s.applyMonitors, 0},
		{"GET", "/api/v1/monitors/{name}/results", store.RoleViewer, s.monitorResults, 0},
		{"POST", "/api/v1/monitors/{name}/evaluate", store.RoleOperator, s.evaluateMonitor, 0},
		{"POST", "/api/v1/login-links", store.RoleAdmin, s.createLoginLink, 0},
		{"GET", "/api/v1/tokens", store.RoleAdmin, s.listTokens, 0},
		{"POST", "/api/v1/tokens", store.RoleAdmin, s.createToken, 0},
		{"DELETE", "/api/v1/tokens/{id}", store.RoleAdmin, s.deleteToken, 0},
	}
}

// Handler is the server's HTTP API, behind its guard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		pattern := rt.method + " " + rt.path
		if rt.path == "/metrics" {
			mux.Handle(pattern, promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
			continue
		}
		mux.Handle(pattern, s.wrap(rt))
	}
	// Unknown API paths answer JSON; every other path is the web UI's,
	// behind the same guard (and the same roles, through uiViewer).
	mux.Handle("/api/", s.wrap(route{path: "/api/", h: noEndpoint}))
	mux.Handle("/", s.ui.Handler())
	return s.guard(mux)
}

// wrap bounds the body, authorizes, runs the handler and answers its error
// with the status of the error's kind (package fault: the CLI's exit codes
// come from the same kinds).
func (s *Server) wrap(rt route) http.Handler {
	limit := rt.limit
	if limit == 0 {
		limit = maxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		err := func() error {
			if r.ContentLength > limit {
				// Refused before anything is read or looked up.
				return fault.Errorf(fault.TooLarge, "the body is larger than %d bytes: send less at once", limit)
			}
			if rt.role != "" {
				var err error
				if r, err = s.authorize(r, rt.role); err != nil {
					return err
				}
			}
			return rt.h(w, r)
		}()
		if err == nil {
			return
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fault.Errorf(fault.TooLarge, "the body is larger than %d bytes: send less at once", mbe.Limit)
		}
		code := fault.HTTPStatus(err)
		switch code {
		case http.StatusInternalServerError:
			s.log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		case http.StatusUnauthorized, http.StatusForbidden:
			s.m.refused.WithLabelValues("auth").Inc()
		}
		writeErr(w, code, err)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	// Encoded before the status is sent: a value that cannot be written
	// (a NaN) is a 500 with the reason, not a 200 with half a body.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		// A list with nothing in it is [], never null.
		v = []struct{}{}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("the answer cannot be written as JSON: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeErr(w http.ResponseWriter, code int, err error) {
	body := map[string]any{"error": err.Error()}
	var fe flow.Errors
	if errors.As(err, &fe) {
		var problems []map[string]any
		for _, e := range fe {
			problems = append(problems, map[string]any{"file": e.File, "line": e.Line, "column": e.Column, "field": e.Field, "message": e.Msg})
		}
		body["problems"] = problems
		if len(fe) == 1 && fe[0].Field != "" {
			body["field"] = fe[0].Field
		}
	}
	var se *signal.Error
	var ke *fault.Error
	var ef interface{ ErrField() string }
	switch {
	case errors.As(err, &se) && se.Field != "":
		body["field"] = se.Field
	case errors.As(err, &ke) && ke.Field != "":
		body["field"] = ke.Field
	case errors.As(err, &ef) && ef.ErrField() != "":
		body["field"] = ef.ErrField()
	}
	_ = writeJSON(w, code, body)
}

// decodeJSON reads a request's JSON body into v, strictly: unknown fields
// and trailing data are errors, and every message names the JSON field
// that is wrong. shape describes the expected body for messages. The body
// is already bounded by the route's limit. Every handler decodes through
// here.
func decodeJSON(r *http.Request, v any, shape string) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonErr(err, shape)
	}
	if err := validUTF8(b); err != nil {
		return err
	}
	// encoding/json keeps the last of a key written twice; the sender may
	// have meant the first.
	// A list of raw documents is left to their own decoders (each event
	// checks its keys in one pass): walking a whole batch token by token
	// would cost ~10 us an event on the ingest path.
	if _, raw := v.(*[]json.RawMessage); !raw {
		if k := jsonkey.Duplicate(b); k != "" {
			return fault.Invalidf(k, "written twice: give each field once (the body is %s)", shape)
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jsonErr(err, shape)
	}
	// Only white space may follow (d.More misses a stray ] or }).
	if len(bytes.TrimSpace(b[d.InputOffset():])) > 0 {
		return fault.Invalidf("", "the body is %s, with nothing after it", shape)
	}
	return nil
}

// readBody reads a whole body within the route's limit, for the documents
// whose own package decodes them with positions (endpoint and experiment
// specs, batches of events): one reader, the same limits and errors.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, jsonErr(err, "a JSON document")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &fault.Error{Kind: fault.Invalid, Err: fmt.Errorf("%w: send a JSON document", errEmptyBody)}
	}
	return b, validUTF8(b)
}

// readJSON is readBody for a body that must be one JSON document: the spec
// decoders read YAML too (JSON is YAML), which an API body is not.
func readJSON(r *http.Request) ([]byte, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fault.Invalidf("", "the body is not JSON (byte %d: %v): send a JSON document", se.Offset, se)
		}
		return nil, fault.Invalidf("", "the body is not JSON: %v", err)
	}
	return b, nil
}

// validUTF8 refuses a body that is not UTF-8: encoding/json would replace
// the bad bytes, so two different keys could become one.
func validUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	at := 0
	for at < len(b) {
		r, size := utf8.DecodeRune(b[at:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		at += size
	}
	return fault.Invalidf("", "the body is not valid UTF-8 (byte %d): send JSON in UTF-8", at)
}

// decodeOptional is decodeJSON for a body that may be empty.
func decodeOptional(r *http.Request, v any, shape string) error {
	err := decodeJSON(r, v, shape)
	if errors.Is(err, errEmptyBody) {
		return nil
	}
	return err
}

var errEmptyBody = errors.New("empty body")

// jsonErr turns encoding/json's errors into messages a user can act on:
// the field path, what was expected and what came, never a Go type name.
func jsonErr(err error, shape string) error {
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return fault.Errorf(fault.TooLarge, "the body is larger than %d bytes: send less at once", mbe.Limit)
	case errors.Is(err, io.EOF):
		return &fault.Error{Kind: fault.Invalid, Err: fmt.Errorf("%w: send %s", errEmptyBody, shape)}
	case errors.As(err, &ute):
		field := ute.Field
		return fault.Invalidf(field, "expected %s, got a JSON %s (the body is %s)", jsonKind(ute.Type.Kind().String()), ute.Value, shape)
	case errors.As(err, &se):
		return fault.Invalidf("", "malformed JSON at byte %d: %v (the body is %s)", se.Offset, se, shape)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Invalidf("", "malformed JSON: the body ends too soon (the body is %s)", shape)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		// encoding/json has no type for this one.
		return fault.Invalidf(strings.Trim(name, `"`), "unknown field (the body is %s)", shape)
	}
	return fault.Invalidf("", "malformed JSON body: %v (the body is %s)", err, shape)
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "a whole number"
	case strings.HasPrefix(k, "float"):
		return "a number"
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case k == "slice", k == "array":
		return "an array"
	case k == "map", k == "struct":
		return "an object"
	}
	return "another type"
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.Invalidf("id", "run id %q: must be a positive number", r.PathValue("id"))
	}
	return id, nil
}

func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fault.Invalidf(name, "query %s=%q: must be a whole number >= 0", name, v)
	}
	return n, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.st.Cursor(ctx, orchestrate.SignalsCursor); err != nil {
		return fault.Errorf(fault.Unavailable, "store: %v", err)
	}
	status := "ok"
	if s.stopping.Load() {
		status = "stopping"
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": status, "running": len(s.eng.Running())})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, err := w.Write(openAPI)
	return err
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) error {
	fs, err := s.st.Flows(r.Context())
	if err != nil {
		return err
	}
	if fs == nil {
		fs = []store.FlowSummary{}
	}
	return writeJSON(w, http.StatusOK, fs)
}

// applyFlows registers flow and signals files. The body is a JSON object
// {"files": [{"path": "a.yaml", "content": "..."}], "dir": "/the/flows/folder"}:
// with a dir (a folder on the server), each flow's version holds a code
// snapshot of it, as `baton flow apply` makes ($BATON_CODE_LIMIT caps it).
func (s *Server) applyFlows(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Files []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"files"`
		Dir string `json:"dir"`
	}
	if err := decodeJSON(r, &body, `{"files": [{"path", "content"}], "dir"}`); err != nil {
		return err
	}
	if len(body.Files) == 0 {
		return fault.Invalidf("files", "give at least one {path, content}")
	}
	if body.Dir != "" && !strings.HasPrefix(body.Dir, "/") {
		return fault.Invalidf("dir", "%q: must be an absolute path on the server", body.Dir)
	}
	docs := make([]catalog.Document, len(body.Files))
	for i, f := range body.Files {
		if f.Path == "" {
			f.Path = fmt.Sprintf("files[%d]", i)
		}
		docs[i] = catalog.Document{Path: f.Path, Dir: body.Dir, Data: []byte(f.Content)}
	}
	opt, err := s.home.CodeOptions("")
	if err != nil {
		return err
	}
	applied, err := catalog.ApplyCode(r.Context(), s.st, docs, &catalog.Code{Blobs: s.blobs, Options: opt})
	if err != nil {
		return err
	}
	s.reloadNow()
	return writeJSON(w, http.StatusOK, applied)
}

func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) error {
	v, err := s.st.FlowVersion(r.Context(), r.PathValue("name"), 0)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) flowVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.st.FlowVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// createRun queues a run of a registered flow for the server to execute.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Params map[string]json.RawMessage `json:"params"`
		Tags   []string                   `json:"tags"`
	}
	if err := decodeOptional(r, &body, `{"params": {NAME: VALUE}, "tags": [TAG]}`); err != nil {
		return err
	}
	v, err := s.st.FlowVersion(r.Context(), r.PathValue("name"), 0)
	if err != nil {
		return err
	}
	fl, err := flow.Stored(v.Flow, v.Version, v.Spec)
	if err != nil {
		return err
	}
	params, err := fl.CheckParams(body.Params)
	if err != nil {
		return err
	}
	run, err := s.st.CreateRun(r.Context(), store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Params: params,
		Tags: body.Tags, Trigger: store.TriggerAPI})
	if err != nil {
		return err
	}
	s.orch.WakeSchedule()
	return writeJSON(w, http.StatusCreated, run)
}

func (s *Server) unblock(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.st.FlowVersion(r.Context(), name, 0); err != nil {
		return err
	}
	if err := s.st.Unblock(r.Context(), name); err != nil {
		return err
	}
	s.orch.WakeSchedule()
	return writeJSON(w, http.StatusOK, map[string]any{"flow": name, "blocked": false})
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	st := store.RunStatus(q.Get("status"))
	switch st {
	case "", store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled:
	default:
		return fault.Invalidf("status", "%q: use pending, running, succeeded, failed or cancelled", st)
	}
	runs, err := s.st.Runs(r.Context(), store.RunFilter{Flow: q.Get("flow"), Status: st, Tag: q.Get("tag"), Limit: limit})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, runs)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	// Each step's tasks come in pages (?step=&status=&offset=&limit=), as
	// `baton show` pages them: a run of a million tasks answers with its
	// counts and one page, never everything.
	q := r.URL.Query()
	o := view.Options{Step: q.Get("step")}
	if o.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	if o.Limit, err = queryInt(r, "limit", view.DefaultLimit); err != nil {
		return err
	}
	if o.Limit == 0 {
		o.Limit = -1 // counts only
	}
	switch st := store.TaskStatus(q.Get("status")); st {
	case "":
	case store.TaskPending, store.TaskRunning, store.TaskSucceeded, store.TaskFailed, store.TaskSkipped, store.TaskCancelled:
		o.Status = st
	default:
		return fault.Invalidf("status", "%q: use pending, running, succeeded, failed, skipped or cancelled", st)
	}
	v, err := view.LoadRunWith(r.Context(), s.st, id, o)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if !s.eng.Cancel(id) {
		// Not executing here: ask its owner through the store (a
		// pending run ends at once).
		if err := s.st.RequestCancel(r.Context(), id, "cancelled through the API"); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "cancel": "requested"})
}

func (s *Server) resumeRun(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var body struct {
		From string `json:"from"`
	}
	if err := decodeOptional(r, &body, `{"from": STEP}`); err != nil {
		return err
	}
	run, err := s.eng.Resume(r.Context(), id, body.From, false)
	if err != nil {
		return err
	}
	s.orch.WakeSchedule()
	return writeJSON(w, http.StatusCreated, run)
}

func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	index, err := queryInt(r, "index", -1)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("index") == "" {
		index = -1
	}
	attempt, err := queryInt(r, "attempt", 0)
	if err != nil {
		return err
	}
	if _, err := s.st.Run(r.Context(), id); err != nil {
		return err
	}
	logs, err := view.Logs(r.Context(), s.st, s.blobs, id, r.URL.Query().Get("step"), index, attempt)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, logs)
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) error {
	p, err := artifact.ParsePath(r.PathValue("path"))
	if err != nil {
		return fault.Invalidf("path", "%v", err)
	}
	a, err := artifact.Resolve(r.Context(), s.st, p)
	if err != nil {
		return err
	}
	rc, err := s.blobs.Open(r.Context(), a.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	// A large artifact may take longer than the server's write timeout:
	// allow a slow link of 1 MiB/s on top of it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout + time.Duration(a.Size>>20)*time.Second))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
	w.Header().Set("X-Baton-Digest", "sha256:"+a.Digest)
	_, err = io.Copy(w, rc)
	return err
}

func (s *Server) listSignals(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	sigs, err := s.st.Signals(r.Context(), store.SignalFilter{Name: r.URL.Query().Get("name"), Limit: limit})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sigs)
}

// publishSignal stores a signal (201), or returns the existing one when the
// id was published before (200).
func (s *Server) publishSignal(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name   string                     `json:"name"`
		ID     string                     `json:"id"`
		Params map[string]json.RawMessage `json:"params"`
	}
	if err := decodeJSON(r, &body, `{"name", "id", "params"}`); err != nil {
		return err
	}
	if !flow.ValidName(body.Name) {
		return fault.Invalidf("name", "%q: not a signal name", body.Name)
	}
	if body.Params == nil {
		body.Params = map[string]json.RawMessage{}
	}
	sg, created, err := s.orch.Publish(r.Context(), body.Name, body.ID, body.Params, store.SignalSource{Kind: store.SourceExternal})
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		s.m.signals.WithLabelValues(sg.Name).Inc()
	}
	return writeJSON(w, code, map[string]any{"signal": sg, "created": created})
}

func (s *Server) getSignal(w http.ResponseWriter, r *http.Request) error {
	sg, err := s.st.Signal(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	fires, err := s.st.Fires(r.Context(), store.FireFilter{SignalID: sg.ID})
	if err != nil {
		return err
	}
	runs := []int64{}
	for _, f := range fires {
		runs = append(runs, f.RunID)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"signal": sg, "triggered_runs": runs})
}

func (s *Server) signalLineage(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 20)
	if err != nil {
		return err
	}
	l, err := lineage.OfSignal(r.Context(), s.st, r.PathValue("name"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) flowLineage(w http.ResponseWriter, r *http.Request) error {
	dir := r.URL.Query().Get("direction")
	if dir == "" {
		dir = lineage.Downstream
	}
	if dir != lineage.Downstream && dir != lineage.Upstream {
		return fault.Invalidf("direction", "%q: use downstream or upstream", dir)
	}
	l, err := lineage.OfFlow(r.Context(), s.st, r.PathValue("name"), dir)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) runLineage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	l, err := lineage.OfRun(r.Context(), s.st, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) openLineage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	evs, err := lineage.OpenLineage(r.Context(), s.st, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, evs)
}
