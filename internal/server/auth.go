package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
)

// authorize checks the request's bearer token for role. A server that
// listens on loopback only trusts the machine and needs none (unless
// Options.RequireAuth).
func (s *Server) authorize(r *http.Request, role string) error {
	if s.loopback && !s.opt.RequireAuth {
		return nil
	}
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return &httpError{http.StatusUnauthorized, fmt.Errorf("this endpoint needs a %s token: send Authorization: Bearer TOKEN (make one with `baton token create --role %s`)", role, role)}
	}
	t, err := s.st.TokenByHash(r.Context(), token.Hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return &httpError{http.StatusUnauthorized, errors.New("unknown token")}
	}
	if err != nil {
		return &httpError{http.StatusInternalServerError, err}
	}
	if !token.Allows(t.Role, role) {
		return &httpError{http.StatusForbidden, fmt.Errorf("token %s (%s) may not do this: it needs %s", t.Name, t.Role, role)}
	}
	return nil
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
	if err := decode(w, r, &body); err != nil {
		return err
	}
	secret, t, err := token.New(body.Name, body.Role)
	if err != nil {
		return badRequest("%v", err)
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
