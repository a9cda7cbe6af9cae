// Package token makes and checks API tokens. A token's secret is shown once;
// only its SHA-256 is stored.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/baton-ml/baton/internal/store"
)

// Roles in increasing power: each allows what the ones before allow.
var Roles = []store.Role{store.RoleViewer, store.RoleOperator, store.RoleAdmin}

// prefix marks baton secrets so they are easy to find in leaked logs.
const prefix = "bt_"

// New makes a token with a fresh secret.
func New(name string, role store.Role) (secret string, t store.Token, err error) {
	if !slices.Contains(Roles, role) {
		return "", t, fmt.Errorf("role %q: use viewer, operator or admin", role)
	}
	if name == "" {
		return "", t, fmt.Errorf("a token needs a name (who or what uses it)")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", t, err
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", t, err
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, store.Token{ID: hex.EncodeToString(id[:]), Name: name, Role: role, Hash: Hash(secret)}, nil
}

// Hash is what the store keeps of a secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Allows reports whether role may do what needs requires.
func Allows(role, needs store.Role) bool {
	return slices.Index(Roles, role) >= slices.Index(Roles, needs) && slices.Contains(Roles, role)
}
