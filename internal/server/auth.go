package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
)

// The server's defences, in the order a request meets them (guard, then
// authenticate in wrap):
//
//   - Host must name this server by an IP address, localhost, or a name
//     the operator allowed (--allowed-host): a page on a rebinding domain
//     that resolves to 127.0.0.1 sends its own name and is refused.
//   - A browser's Origin, when sent, must be this server's own (or one the
//     operator allowed); Sec-Fetch-Site: cross-site is refused.
//   - Requests that change something carry Content-Type application/json
//     (or JSON lines for events): a type no HTML form and no "simple"
//     cross-origin request can send without a CORS preflight, which this
//     server never answers.
//   - Every API route needs a token, on loopback too: a stored token (by
//     role), or the home's own secret (admin), which the CLI reads from the
//     home and the UI gets from the login URL `baton server` prints, as a
//     SameSite=Strict, HttpOnly cookie.

// tokenCookie holds a browser's secret after /login.
const tokenCookie = "baton_token"

// Identity is who a request acts as: the token's name and role. Audit
// records (who registered, who moved a model) take the name from here,
// never from the request body.
type Identity struct {
	Name string
	Role string
}

type identityKey struct{}

// identity returns the caller authenticated for this request.
func identity(r *http.Request) Identity {
	id, _ := r.Context().Value(identityKey{}).(Identity)
	return id
}

// HomeActor names the holder of the home's own token in audit records.
const HomeActor = "local"

// authenticate finds who the request's secret belongs to.
func (s *Server) authenticate(r *http.Request) (Identity, error) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		if c, err := r.Cookie(tokenCookie); err == nil {
			secret = c.Value
		}
	}
	if secret == "" {
		return Identity{}, fault.Errorf(fault.Unauthenticated, "this endpoint needs a token: the baton CLI on this home sends one by itself; "+
			"in a browser, open the login URL `baton server` printed; else send Authorization: Bearer TOKEN "+
			"(make one with `baton token create --role viewer|operator|admin`)")
	}
	if s.homeToken != "" && !s.opt.RequireAuth && subtle.ConstantTimeCompare([]byte(secret), []byte(s.homeToken)) == 1 {
		return Identity{Name: HomeActor, Role: store.RoleAdmin}, nil
	}
	t, err := s.st.TokenByHash(r.Context(), token.Hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, fault.Errorf(fault.Unauthenticated, "unknown token: check it, or make one with `baton token create`")
	}
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: t.Name, Role: t.Role}, nil
}

// authorize checks the request's token for role and returns the request
// carrying its identity.
func (s *Server) authorize(r *http.Request, role string) (*http.Request, error) {
	id, err := s.authenticate(r)
	if err != nil {
		return r, err
	}
	if !token.Allows(id.Role, role) {
		return r, fault.Errorf(fault.Forbidden, "token %s (%s) may not do this: it needs %s", id.Name, id.Role, role)
	}
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id)), nil
}

// guard refuses requests that did not come from this server's own pages
// or from a program: foreign origins, rebinding host names, and changes
// sent with a type a cross-origin form could send.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reason, err := s.refusal(r)
		if err != nil {
			s.m.refused.WithLabelValues(reason).Inc()
			writeErr(w, fault.HTTPStatus(err), err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusal says why a request is refused (a metric label and an error), or
// nothing.
func (s *Server) refusal(r *http.Request) (string, error) {
	if !s.hostAllowed(r.Host) {
		return "host", fault.Errorf(fault.Forbidden, "Host %q does not name this server: use its address (%s), or start it with --allowed-host %s",
			r.Host, s.Addr(), hostOnly(r.Host))
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "origin", fault.Errorf(fault.Forbidden, "cross-site requests are refused")
	}
	if o := r.Header.Get("Origin"); o != "" && !s.originAllowed(o, r) {
		return "origin", fault.Errorf(fault.Forbidden, "Origin %q is not this server: requests from other web pages are refused", o)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !jsonType(mt) {
		return "content_type", fault.Errorf(fault.Unsupported, "%s %s needs Content-Type: application/json (got %q)",
			r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	return "", nil
}

// jsonType lists the media types a change may come as: JSON, or JSON lines
// for batches of events. None of them is one a cross-origin form or
// "simple" request can send.
func jsonType(mt string) bool {
	switch mt {
	case "application/json", "application/x-ndjson", "application/jsonl", "application/jsonlines":
		return true
	}
	return false
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// hostAllowed accepts a Host header that names this server by an address
// (which no rebinding domain can be), localhost, or an allowed name.
func (s *Server) hostAllowed(hostport string) bool {
	h := strings.ToLower(hostOnly(hostport))
	if h == "" {
		return false
	}
	if net.ParseIP(h) != nil || h == "localhost" {
		return true
	}
	for _, a := range s.opt.AllowedHosts {
		if strings.EqualFold(a, h) {
			return true
		}
	}
	return false
}

// originAllowed accepts this server's own pages (the origin of the host
// the request was sent to) and origins the operator allowed.
func (s *Server) originAllowed(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // "null" (a sandboxed or file page) included
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range s.opt.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// HomeToken is the home's own API secret this server accepts (admin), for
// programs in the same process such as benchmarks.
func (s *Server) HomeToken() string { return s.homeToken }

// LoginURL is the address that signs a browser in with the home's token.
func (s *Server) LoginURL() string {
	if s.homeToken == "" {
		return ""
	}
	host := s.Addr()
	if h, port, err := net.SplitHostPort(host); err == nil {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			host = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + host + "/login?token=" + url.QueryEscape(s.homeToken)
}

// login turns ?token=SECRET into a cookie for this server's pages, then
// leaves the secret out of the address bar.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	secret := r.URL.Query().Get("token")
	if secret == "" {
		return fault.Invalidf("token", "open the login URL `baton server` printed (it carries ?token=...)")
	}
	req := r.Clone(r.Context())
	req.Header.Set("Authorization", "Bearer "+secret)
	if _, err := s.authenticate(req); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: secret, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>baton</title></head>
<body><h1>baton server</h1>
{{if .Name}}<p>Signed in as {{.Name}} ({{.Role}}).</p>{{else}}<p>Not signed in: open the login URL <code>baton server</code> printed.</p>{{end}}
<p>The JSON API is under <a href="/api/v1/runs">/api/v1</a>; its description is <a href="/api/v1/openapi.yaml">/api/v1/openapi.yaml</a>.</p>
</body></html>
`))

// index is the page a login lands on.
func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path != "/" {
		return fault.Errorf(fault.NotFound, "no endpoint %s %s (see /api/v1/openapi.yaml)", r.Method, r.URL.Path)
	}
	id, _ := s.authenticate(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return indexPage.Execute(w, id)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.st.Tokens(r.Context())
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []store.Token{}
	}
	return writeJSON(w, http.StatusOK, ts)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := decodeJSON(r, &body, `{"name", "role"}`); err != nil {
		return err
	}
	secret, t, err := token.New(body.Name, body.Role)
	if err != nil {
		return fault.Invalidf("", "%v", err)
	}
	if err := s.st.CreateToken(r.Context(), t); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.st.DeleteToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
