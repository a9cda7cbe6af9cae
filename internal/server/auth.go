package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
	"github.com/baton-ml/baton/internal/ui"
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
//     home. A browser signs in with a one-time login link (printed by
//     `baton server`, or made by `baton login`) and then carries a session
//     cookie: a random value held in this process's memory, expiring, never
//     the token itself, and accepted only from the server's own pages.

// sessionTTL is how long a browser stays signed in.
const sessionTTL = 12 * time.Hour

// loginTTL is how long an unused login link stays valid.
const loginTTL = 24 * time.Hour

// sessions are the signed-in browsers and the login links not used yet.
// Both live in memory only: a restart signs everyone out.
type sessions struct {
	mu     sync.Mutex
	active map[string]session   // cookie value -> who, until when
	links  map[string]time.Time // one-time login secret -> expiry
}

type session struct {
	id      Identity
	expires time.Time
}

func randomSecret(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux and macOS
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// link makes a one-time login secret.
func (ss *sessions) link(now time.Time) string {
	secret := randomSecret("btl_")
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, exp := range ss.links {
		if now.After(exp) {
			delete(ss.links, k)
		}
	}
	ss.links[secret] = now.Add(loginTTL)
	return secret
}

// redeem uses up a login secret.
func (ss *sessions) redeem(secret string, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	exp, ok := ss.links[secret]
	delete(ss.links, secret)
	return ok && now.Before(exp)
}

func (ss *sessions) start(id Identity, now time.Time) string {
	v := randomSecret("bts_")
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.active {
		if now.After(s.expires) {
			delete(ss.active, k)
		}
	}
	ss.active[v] = session{id: id, expires: now.Add(sessionTTL)}
	return v
}

func (ss *sessions) end(v string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.active, v)
}

func (ss *sessions) lookup(v string, now time.Time) (Identity, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.active[v]
	if !ok || now.After(s.expires) {
		return Identity{}, false
	}
	return s.id, true
}

// cookieName carries the port: browsers share cookies between the ports
// of one host, and two servers on one machine must not overwrite each
// other's sessions.
func (s *Server) cookieName() string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return "baton_session_" + port
}

// Identity is who a request acts as: the token's name and role. Audit
// records (who registered, who moved a model) take the name from here,
// never from the request body.
type Identity struct {
	Name string
	Role store.Role
	// hash is the stored token's hash (none for the home's own token): a
	// session made from a token ends when the token is deleted.
	hash string
}

type identityKey struct{}

// identity returns the caller authenticated for this request.
func identity(r *http.Request) Identity {
	id, _ := r.Context().Value(identityKey{}).(Identity)
	return id
}

// HomeActor names the holder of the home's own token in audit records.
const HomeActor = "local"

// authenticate finds who the request's secret belongs to: a bearer token,
// else a session cookie sent by one of the server's own pages.
func (s *Server) authenticate(r *http.Request) (Identity, error) {
	secret := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(value) == "" {
			return Identity{}, fault.Errorf(fault.Unauthenticated, "Authorization: use the Bearer scheme (Authorization: Bearer TOKEN)")
		}
		secret = strings.TrimSpace(value)
	} else if c, err := r.Cookie(s.cookieName()); err == nil && c.Value != "" {
		// A cookie travels with requests from any page of this host,
		// other ports included: only the server's own pages may use it.
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			return Identity{}, fault.Errorf(fault.Forbidden, "the session cookie is accepted only from this server's own pages (Sec-Fetch-Site: %s)", site)
		}
		id, ok := s.sessions.lookup(c.Value, time.Now())
		if !ok {
			return Identity{}, fault.Errorf(fault.Unauthenticated, "the session has expired or the server restarted: sign in again (`baton login` prints a link)")
		}
		if id.hash != "" {
			// Deleting a token (here or with the CLI) ends its sessions.
			if _, err := s.st.TokenByHash(r.Context(), id.hash); errors.Is(err, store.ErrNotFound) {
				s.sessions.end(c.Value)
				return Identity{}, fault.Errorf(fault.Unauthenticated, "the token this session signed in with was deleted: sign in again")
			} else if err != nil {
				return Identity{}, err
			}
		}
		return id, nil
	}
	if secret == "" {
		return Identity{}, fault.Errorf(fault.Unauthenticated, "this endpoint needs a token: the baton CLI on this home sends one by itself; "+
			"in a browser, open a login link (`baton server` prints one, `baton login` makes another); else send Authorization: Bearer TOKEN "+
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
	return Identity{Name: t.Name, Role: t.Role, hash: t.Hash}, nil
}

// authorize checks the request's token for role and returns the request
// carrying its identity.
func (s *Server) authorize(r *http.Request, role store.Role) (*http.Request, error) {
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
		// Nothing here is to be framed or sniffed into another type.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
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
	case http.MethodDelete:
		// A browser preflights every cross-origin DELETE, and this
		// server never grants a preflight.
		if r.ContentLength == 0 {
			return "", nil
		}
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

// hostOnly returns the host of a Host header, or "" when its port is not
// a port number.
func hostOnly(hostport string) string {
	h, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.Trim(hostport, "[]")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return ""
	}
	return h
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
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || hostOnly(u.Host) == "" {
		return false // "null" (a sandboxed or file page) included; an origin is scheme://host[:port] and nothing else
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

// LoginURL makes a one-time link that signs a browser in as the home's
// owner; "" when the home's token is not accepted (RequireAuth).
func (s *Server) LoginURL() string {
	if s.homeToken == "" || s.opt.RequireAuth {
		return ""
	}
	return s.loginURL(s.sessions.link(time.Now()))
}

func (s *Server) loginURL(secret string) string {
	host := s.Addr()
	if h, port, err := net.SplitHostPort(host); err == nil {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			host = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + host + "/login?token=" + url.QueryEscape(secret)
}

// login turns ?token=SECRET (a one-time login secret, or any token this
// server accepts) into a session cookie for this server's pages, then
// leaves the secret out of the address bar.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	secret := r.URL.Query().Get("token")
	if secret == "" {
		return fault.Invalidf("token", "open a login link (`baton server` prints one, `baton login` makes another)")
	}
	now := time.Now()
	var id Identity
	if strings.HasPrefix(secret, "btl_") {
		if !s.sessions.redeem(secret, now) {
			return fault.Errorf(fault.Unauthenticated, "this login link was used already or has expired: `baton login` makes a new one")
		}
		id = Identity{Name: HomeActor, Role: store.RoleAdmin}
	} else {
		req := r.Clone(r.Context())
		req.Header.Set("Authorization", "Bearer "+secret)
		var err error
		if id, err = s.authenticate(req); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: s.sessions.start(id, now), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// createLoginLink answers POST /api/v1/login-links (admin): a new one-time
// login link, for `baton login`.
func (s *Server) createLoginLink(w http.ResponseWriter, r *http.Request) error {
	if s.opt.RequireAuth {
		return fault.Errorf(fault.Conflict, "this server accepts only stored tokens (--require-auth): sign in with /login?token=YOUR_TOKEN")
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"url": s.loginURL(s.sessions.link(time.Now())), "expires_in": loginTTL.String()})
}

// noEndpoint answers an API path no route has.
func noEndpoint(w http.ResponseWriter, r *http.Request) error {
	return fault.Errorf(fault.NotFound, "no endpoint %s %s (see /api/v1/openapi.yaml)", r.Method, r.URL.Path)
}

// uiViewer is who a web page is for: the API's own authentication and
// the viewer role every page needs; operators also see the buttons that
// change runs (which call the API, checked again there).
func (s *Server) uiViewer(r *http.Request) (ui.Viewer, error) {
	r, err := s.authorize(r, store.RoleViewer)
	if err != nil {
		return ui.Viewer{}, err
	}
	id := identity(r)
	return ui.Viewer{Name: id.Name, Role: id.Role, Operator: token.Allows(id.Role, store.RoleOperator)}, nil
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
		Name string     `json:"name"`
		Role store.Role `json:"role"`
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
