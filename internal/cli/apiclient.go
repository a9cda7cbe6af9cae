package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/home"
)

// apiClient calls the API of the server running on the home, as the
// home's owner: with the home's token, or $BATON_TOKEN when set. It is the
// CLI's one HTTP client.
type apiClient struct {
	addr  string
	token string
	from  string // where the token came from, for messages
	http  *http.Client
}

// errUnreachable marks a server that the home announces but that does not
// answer (it died without withdrawing): callers with a store path may use it.
var errUnreachable = fault.New(fault.Unavailable, "the home's server does not answer")

// serverClient returns a client of the home's running server, or false
// when none runs.
func serverClient(h home.Home) (*apiClient, bool, error) {
	srv, ok := h.RunningServer()
	if !ok {
		return nil, false, nil
	}
	tok, from := os.Getenv("BATON_TOKEN"), "$BATON_TOKEN"
	if tok == "" {
		var err error
		if tok, err = h.APIToken(); err != nil {
			return nil, true, fmt.Errorf("call the server at %s: %w", srv.Addr, err)
		}
		from = filepath.Join(h.Dir, "api.token")
	}
	return &apiClient{addr: srv.Addr, token: tok, from: from, http: &http.Client{Timeout: 30 * time.Second}}, true, nil
}

// do sends body as JSON and decodes the answer into out. An error answer
// comes back with the kind of its status (so the exit code matches), and
// the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", errUnreachable, c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the server's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg = fmt.Sprintf("%s (the server at %s refused the token from %s)", msg, c.addr, c.from)
		}
		return fault.Wrap(fault.OfStatus(resp.StatusCode), errors.New(msg))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the server's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (a *app) loginCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Print a one-time link that signs a browser in to the home's running server",
		Long: `Print a one-time link that signs a browser in to the running server of this
home as its owner (admin). The link works once, within 24 hours; the browser
then holds a session cookie for 12 hours (or until the server restarts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			var out struct {
				URL string `json:"url"`
			}
			if err := a.callServer(cmd.Context(), e, "POST", "/api/v1/login-links", nil, &out); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(out)
			}
			fmt.Fprintln(a.out, out.URL)
			return nil
		},
	}
}
