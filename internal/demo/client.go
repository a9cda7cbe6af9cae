package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// client calls the server's HTTP API as any client does: with a token,
// JSON bodies, over loopback.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(addr, token string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &client{base: "http://" + addr, token: token, http: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// apiError is an answer the API refused.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Body)
}

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *client) healthy(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/healthz", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// page is the part of a recommend answer the simulation reads.
type page struct {
	Path       string `json:"path"`
	Reason     string `json:"reason"`
	Detail     string `json:"detail"`
	Version    int    `json:"version"`
	Experiment string `json:"experiment"`
	Canary     bool   `json:"canary"`
	Prediction struct {
		Rows []struct {
			ID    string `json:"id"`
			Items []struct {
				Title      string `json:"title"`
				NewCreator bool   `json:"new_creator"`
			} `json:"items"`
			Diversity float64 `json:"diversity"`
		} `json:"rows"`
	} `json:"prediction"`
}

func (c *client) recommend(ctx context.Context, endpoint, member, market string) (page, error) {
	var p page
	err := c.do(ctx, "POST", "/api/v1/predict/"+url.PathEscape(endpoint),
		map[string]any{"key": member, "attributes": map[string]any{"market": market}}, &p)
	return p, err
}

func (c *client) transition(ctx context.Context, model string, version int, to, reason string) error {
	return c.do(ctx, "POST", fmt.Sprintf("/api/v1/models/%s/versions/%d/transitions", url.PathEscape(model), version),
		map[string]any{"to": to, "reason": reason}, nil)
}

func (c *client) abortRollout(ctx context.Context, endpoint, reason string) error {
	return c.do(ctx, "POST", "/api/v1/endpoints/"+url.PathEscape(endpoint)+"/rollouts/abort", map[string]any{"reason": reason}, nil)
}

func (c *client) experimentStatus(ctx context.Context, name, status, reason string) error {
	return c.do(ctx, "POST", "/api/v1/experiments/"+url.PathEscape(name)+"/status", map[string]any{"status": status, "reason": reason}, nil)
}

// searchPage is the part of a search answer the simulation reads.
type searchPage struct {
	Path       string `json:"path"`
	Reason     string `json:"reason"`
	Version    int    `json:"version"`
	Canary     bool   `json:"canary"`
	Prediction struct {
		Hits []struct {
			Title string `json:"title"`
		} `json:"hits"`
	} `json:"prediction"`
}

func (c *client) search(ctx context.Context, endpoint, query, member string) (searchPage, error) {
	var p searchPage
	err := c.do(ctx, "POST", "/api/v1/predict/"+url.PathEscape(endpoint), map[string]any{"query": query, "key": member}, &p)
	return p, err
}

func (c *client) startRun(ctx context.Context, flow string, params map[string]any) (int64, error) {
	var r struct {
		ID int64 `json:"id"`
	}
	err := c.do(ctx, "POST", "/api/v1/flows/"+url.PathEscape(flow)+"/runs", map[string]any{"params": params}, &r)
	return r.ID, err
}

func (c *client) events(ctx context.Context, source string, evs []map[string]any) error {
	if len(evs) == 0 {
		return nil
	}
	var res struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	}
	if err := c.do(ctx, "POST", "/api/v1/features/events/"+url.PathEscape(source), evs, &res); err != nil {
		return err
	}
	if res.Rejected > 0 {
		return fmt.Errorf("source %s: %d of %d events rejected", source, res.Rejected, len(evs))
	}
	return nil
}

func (c *client) metrics(ctx context.Context, experiment string, ms []map[string]any) error {
	if len(ms) == 0 {
		return nil
	}
	var res struct {
		Rejected int      `json:"rejected"`
		Reasons  []string `json:"reasons"`
	}
	if err := c.do(ctx, "POST", "/api/v1/experiments/"+url.PathEscape(experiment)+"/metrics", ms, &res); err != nil {
		return err
	}
	if res.Rejected > 0 {
		return fmt.Errorf("experiment %s: %d of %d metric events rejected: %v", experiment, res.Rejected, len(ms), res.Reasons)
	}
	return nil
}

func (c *client) fault(ctx context.Context, endpoint, kind, dur string) error {
	return c.do(ctx, "PUT", "/api/v1/endpoints/"+url.PathEscape(endpoint)+"/fault", map[string]any{"kind": kind, "for": dur}, nil)
}

// isNotFound reports whether the API answered 404.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}
