package server

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

// storeDump is every row of every table of a harness's SQLite store, as
// text, by table (rows sorted), leaving out the columns named in skip
// ("table.column"): a before/after comparison of it shows any write.
func storeDump(t *testing.T, h *harness, skip ...string) map[string][]string {
	t.Helper()
	db := openStoreFile(t, h)
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	out := make(map[string][]string, len(tables))
	for _, table := range tables {
		out[table] = tableRows(t, db, table, skip)
	}
	return out
}

func tableRows(t *testing.T, db *sql.DB, table string, skip []string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM "` + table + `"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, c := range cols {
			if slices.Contains(skip, table+"."+c) {
				continue
			}
			if v, ok := vals[i].([]byte); ok {
				vals[i] = string(v)
			}
			fmt.Fprintf(&b, "%s=%v ", c, vals[i])
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// openStoreFile opens the harness's SQLite file a second time, to read.
func openStoreFile(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dir, "baton.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// diffDumps says which rows of which tables differ between two dumps.
func diffDumps(before, after map[string][]string) string {
	var b strings.Builder
	tables := make([]string, 0, len(after))
	for table := range after {
		tables = append(tables, table)
	}
	for table := range before {
		if _, ok := after[table]; !ok {
			tables = append(tables, table)
		}
	}
	slices.Sort(tables)
	for _, table := range tables {
		was, now := before[table], after[table]
		if slices.Equal(was, now) {
			continue
		}
		fmt.Fprintf(&b, "%s: %d rows, then %d\n", table, len(was), len(now))
		for _, r := range was {
			if !slices.Contains(now, r) {
				fmt.Fprintf(&b, "%s: - %s\n", table, r)
			}
		}
		for _, r := range now {
			if !slices.Contains(was, r) {
				fmt.Fprintf(&b, "%s: + %s\n", table, r)
			}
		}
	}
	return b.String()
}

// readableStore gives each GET route something to read: a finished run
// with an artifact and logs, a signal, features with an event, a model in
// production behind an endpoint (experiment "e" is the test's). It returns
// each GET route's path with its wildcards filled, and waits until the
// server has nothing left to do about any of it.
func readableStore(t *testing.T, h *harness, viewer string) map[string]string {
	t.Helper()
	h.apply(t, "name: f\nsteps:\n  - name: start\n    run: echo hello; printf out > \"$BATON_OUTPUT_DIR/out.txt\"\n")
	if r := h.do(t, "POST", "/api/v1/flows/f/runs", map[string]any{}, ""); r.code/100 != 2 {
		t.Fatalf("run: %d %s", r.code, r.body)
	}
	run := h.waitRuns(t, "f", 1)[0]
	if run.Status != store.RunSucceeded {
		t.Fatalf("run %d: %s", run.ID, run.Status)
	}
	if r := h.publish(t, "labels_ready", "s1", map[string]any{"date": "2026-01-01", "labels": 3}); r.code != 201 {
		t.Fatalf("publish: %d %s", r.code, r.body)
	}
	applyFeaturesTB(t, h, "entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n  - {name: n, source: plays, aggregate: count, window: 1h}\n")
	if r := h.do(t, "POST", "/api/v1/features/events/plays", []map[string]any{{"member_id": "m1", "ts": time.Now().Unix(), "minutes": 3}}, ""); r.code != 200 {
		t.Fatalf("events: %d %s", r.code, r.body)
	}
	modelVersion(t, h, "m", `{"kind":"logistic","bias":1,"weights":{"n":0}}`, store.ModelCanary, store.ModelProduction)
	eps := []map[string]any{{"name": "ep", "model": "m", "features": []string{"n"}, "timeout": "1s", "fallback": map[string]any{"static": 0}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	// A monitor, and its first result: the loop evaluates it once, now,
	// and not again before the next UTC midnight.
	mon := `[{"name": "q", "kind": "online_quality", "numerator": {"source": "plays", "field": "minutes"}, "denominator": {"source": "plays"}, "min": 0.5}]`
	if r := h.do(t, "POST", "/api/v1/monitors", mon, ""); r.code != 200 {
		t.Fatalf("monitors: %d %s", r.code, r.body)
	}
	testwait.Until(t, 20*time.Second, func() (bool, string) {
		rs, err := h.st.MonitorResults(context.Background(), store.MonitorResultFilter{Monitor: "q"})
		return err == nil && len(rs) == 1, fmt.Sprint(len(rs), err)
	}, "the monitor's first evaluation")
	// The orchestrator has taken in the signal and the run's end.
	db := openStoreFile(t, h)
	defer db.Close()
	testwait.Until(t, 20*time.Second, func() (bool, string) {
		var sigs, sigCur, evs, evCur int64
		err := db.QueryRow(`SELECT (SELECT COALESCE(MAX(seq), 0) FROM signals), (SELECT COALESCE(MAX(value), 0) FROM cursors WHERE name = 'signals'),
			(SELECT COALESCE(MAX(seq), 0) FROM run_events), (SELECT COALESCE(MAX(value), 0) FROM cursors WHERE name = 'run_events')`).Scan(&sigs, &sigCur, &evs, &evCur)
		return err == nil && sigCur == sigs && evCur == evs, fmt.Sprintf("signals %d, cursor %d; run events %d, cursor %d (%v)", sigs, sigCur, evs, evCur, err)
	}, "the orchestrator to take in the setup")
	id := fmt.Sprint(run.ID)
	return map[string]string{
		"/login":                                   "/login?token=" + viewer,
		"/api/v1/flows/{name}":                     "/api/v1/flows/f",
		"/api/v1/flows/{name}/versions":            "/api/v1/flows/f/versions",
		"/api/v1/runs/{id}":                        "/api/v1/runs/" + id,
		"/api/v1/runs/{id}/logs":                   "/api/v1/runs/" + id + "/logs?step=start",
		"/api/v1/artifacts/{path...}":              "/api/v1/artifacts/" + id + "/start/out.txt",
		"/api/v1/signals/{id}":                     "/api/v1/signals/s1",
		"/api/v1/lineage/signals/{name}":           "/api/v1/lineage/signals/labels_ready",
		"/api/v1/lineage/flows/{name}":             "/api/v1/lineage/flows/f",
		"/api/v1/lineage/runs/{id}":                "/api/v1/lineage/runs/" + id,
		"/api/v1/lineage/runs/{id}/openlineage":    "/api/v1/lineage/runs/" + id + "/openlineage",
		"/api/v1/features/online/{key}":            "/api/v1/features/online/m1",
		"/api/v1/endpoints/{name}/rollouts":        "/api/v1/endpoints/ep/rollouts",
		"/api/v1/models/{name}/versions":           "/api/v1/models/m/versions",
		"/api/v1/models/{name}/versions/{version}": "/api/v1/models/m/versions/production",
		"/api/v1/experiments/{name}/assign":        "/api/v1/experiments/e/assign?unit=every-route",
		"/api/v1/experiments/{name}/report":        "/api/v1/experiments/e/report",
		"/api/v1/monitors/{name}/results":          "/api/v1/monitors/q/results",
	}
}

// getEveryRoute sends every GET route of the API with the token: a
// viewer's routes answer 200 (each read something), an operator's or
// admin's 403, the open ones below 500.
func getEveryRoute(t *testing.T, h *harness, tok string, paths map[string]string) {
	t.Helper()
	for _, rt := range append(h.s.routes(), route{method: "GET", path: "/"}) {
		if rt.method != "GET" {
			continue
		}
		p, ok := paths[rt.path]
		if !ok && strings.Contains(rt.path, "{") {
			t.Fatalf("GET %s: no path to send: add one to readableStore", rt.path)
		}
		if !ok {
			p = rt.path
		}
		r := h.do(t, "GET", p, nil, tok)
		switch {
		case rt.role == store.RoleViewer && r.code != 200,
			(rt.role == store.RoleOperator || rt.role == store.RoleAdmin) && r.code != 403,
			r.code >= 500:
			t.Fatalf("GET %s (role %q): %d %s", p, rt.role, r.code, r.body)
		}
	}
}
