// Package home resolves where baton keeps its state (the home folder, the
// store DSN, the artifact bucket) and opens it.
package home

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/snapshot"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// Home is a resolved baton home.
type Home struct {
	// Dir is the home folder: --home, else $BATON_HOME, else ./.baton.
	Dir string
	// DB is the store DSN: --db, else $BATON_DB, else the SQLite file
	// baton.db in Dir.
	DB string
	// Artifacts is the artifact bucket URL: $BATON_ARTIFACTS, else the
	// folder artifacts in Dir.
	Artifacts string
}

// Resolve applies the precedence flag > environment > default.
func Resolve(dirFlag, dbFlag string) (Home, error) {
	dir := first(dirFlag, os.Getenv("BATON_HOME"), ".baton")
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Home{}, fmt.Errorf("home %q: %w", dir, err)
	}
	h := Home{Dir: abs}
	h.DB = first(dbFlag, os.Getenv("BATON_DB"), "sqlite://"+filepath.Join(abs, "baton.db"))
	h.Artifacts = first(os.Getenv("BATON_ARTIFACTS"), "file://"+filepath.Join(abs, "artifacts"))
	return h, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Postgres reports whether the store is PostgreSQL: shared by many
// processes, so tasks go through its queue.
func (h Home) Postgres() bool {
	return strings.HasPrefix(h.DB, "postgres://") || strings.HasPrefix(h.DB, "postgresql://")
}

// TempDir is the scratch folder for running tasks.
func (h Home) TempDir() string { return filepath.Join(h.Dir, "tmp") }

// CodeDir is where flow versions' code snapshots are extracted for their
// tasks, one folder per snapshot digest.
func (h Home) CodeDir() string { return filepath.Join(h.Dir, "code") }

// CodeLimitHelp says how to raise the size limit of code snapshots.
const CodeLimitHelp = "raise the limit with --code-limit SIZE or $BATON_CODE_LIMIT (e.g. 128MiB)"

// CodeOptions is how flow folders are packed into code snapshots: at most
// limit (a size; empty: $BATON_CODE_LIMIT, else snapshot.DefaultLimit),
// and never the home's own files when the home sits in a flow's folder.
func (h Home) CodeOptions(limit string) (snapshot.Options, error) {
	// The home itself, and, for a flow folder that is the home (or holds
	// it under another name), what baton writes there while it runs:
	// scratch folders, extracted snapshots, spilled events, logs, locks.
	opt := snapshot.Options{Exclude: []string{h.Dir, h.TempDir(), h.CodeDir()}, Hint: CodeLimitHelp}
	for _, name := range []string{"spill", "logs", "features", "api.token", "leader.lock", "demo.log"} {
		opt.Exclude = append(opt.Exclude, filepath.Join(h.Dir, name))
	}
	if limit == "" {
		limit = os.Getenv("BATON_CODE_LIMIT")
	}
	if limit != "" {
		n, err := snapshot.ParseLimit(limit)
		if err != nil {
			return opt, fmt.Errorf("code snapshot limit: %w", err)
		}
		opt.Limit = n
	}
	if dir, ok := strings.CutPrefix(h.Artifacts, "file://"); ok {
		opt.Exclude = append(opt.Exclude, dir)
	}
	if db, ok := strings.CutPrefix(h.DB, "sqlite://"); ok {
		opt.Exclude = append(opt.Exclude, db, db+"-wal", db+"-shm", db+"-journal")
	}
	return opt, nil
}

// Env is what a task needs to reach the same home with the baton CLI:
// the home, and BATON_BIN, the baton binary that runs it (so a step calls
// "$BATON_BIN" whether or not baton is on the PATH).
func (h Home) Env() []string {
	env := []string{"BATON_HOME=" + h.Dir, "BATON_DB=" + h.DB, "BATON_ARTIFACTS=" + h.Artifacts}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "baton" {
		env = append(env, "BATON_BIN="+exe)
	}
	return env
}

// OpenStore opens the store the DSN names: sqlite://PATH (or a bare path),
// or postgres://... .
func (h Home) OpenStore(ctx context.Context) (store.Store, error) {
	dsn := h.DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("--db %s: %s", redact(dsn), redactErr(err, dsn))
		}
		return s, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		dsn = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "sqlite:"):
		dsn = strings.TrimPrefix(dsn, "sqlite:")
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("--db %s: unknown store; use sqlite://PATH", redact(dsn))
	}
	if dsn == "" {
		return nil, fmt.Errorf("--db: empty SQLite path")
	}
	return sqlite.Open(ctx, dsn, sqlite.Options{})
}

// Open opens the store and the artifact bucket.
func (h Home) Open(ctx context.Context) (store.Store, *artifact.Store, error) {
	st, err := h.OpenStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	blobs, err := h.OpenArtifacts(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, blobs, nil
}

// OpenArtifacts opens the artifact bucket.
func (h Home) OpenArtifacts(ctx context.Context) (*artifact.Store, error) {
	return artifact.Open(ctx, h.Artifacts)
}

// redactErr keeps a DSN's password out of an error's text.
func redactErr(err error, dsn string) string {
	return strings.ReplaceAll(err.Error(), dsn, redact(dsn))
}

// redact hides a password in a DSN for messages.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	creds := dsn[scheme+3 : at]
	if user, _, ok := strings.Cut(creds, ":"); ok {
		return dsn[:scheme+3] + user + ":***" + dsn[at:]
	}
	return dsn
}

// Server is what a running `baton server` announces in its home, so the
// CLI can hand it signals directly.
type Server struct {
	Addr    string    `json:"addr"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func (h Home) serverFile() string { return filepath.Join(h.Dir, "server.json") }

// AnnounceServer writes the server file.
func (h Home) AnnounceServer(s Server) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return err
	}
	tmp := h.serverFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, h.serverFile())
}

// WithdrawServer removes the server file if it is this process's.
func (h Home) WithdrawServer() {
	if s, ok := h.RunningServer(); ok && s.PID == os.Getpid() {
		os.Remove(h.serverFile())
	}
}

// RunningServer returns the announced server if its process lives.
func (h Home) RunningServer() (Server, bool) {
	b, err := os.ReadFile(h.serverFile())
	if err != nil {
		return Server{}, false
	}
	var s Server
	if json.Unmarshal(b, &s) != nil || s.PID <= 0 || s.Addr == "" {
		return Server{}, false
	}
	// A process we may not signal is not our server: the PID was reused
	// by another user's process, which must not be sent our token.
	if err := syscall.Kill(s.PID, 0); err != nil {
		return Server{}, false
	}
	return s, true
}

// ErrNoAPIToken is returned by APIToken when no server has made one yet.
var ErrNoAPIToken = errors.New("this home has no API token: (re)start `baton server` to make one")

func (h Home) apiTokenFile() string { return filepath.Join(h.Dir, "api.token") }

// apiTokenPrefix marks a home's own secret, apart from stored tokens (bt_).
const apiTokenPrefix = "bth_"

// APIToken is the home's own API secret, which a server on this home
// accepts with admin rights and which the CLI and the UI send by
// themselves: whoever can read the home (file mode 0600) can already
// change its store, and nobody else, such as a web page the user visits,
// can call the API.
func (h Home) APIToken() (string, error) {
	b, err := os.ReadFile(h.apiTokenFile())
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoAPIToken
	}
	if err != nil {
		return "", fmt.Errorf("read the home's API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if !strings.HasPrefix(tok, apiTokenPrefix) || len(tok) < len(apiTokenPrefix)+32 {
		return "", fmt.Errorf("%s is not a baton API token: remove it and restart baton server to make a new one", h.apiTokenFile())
	}
	return tok, nil
}

// EnsureAPIToken returns the home's API token, making it first if there is
// none. Two processes that race get the same token: the file appears
// whole (a hard link of a complete temporary file) or not at all.
func (h Home) EnsureAPIToken() (string, error) {
	if tok, err := h.APIToken(); !errors.Is(err, ErrNoAPIToken) {
		return tok, err
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := apiTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.CreateTemp(h.Dir, ".api.token-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	// CreateTemp makes the file 0600: only the home's owner reads it.
	_, werr := f.WriteString(tok + "\n")
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return "", fmt.Errorf("write the home's API token: %w", err)
	}
	if err := os.Link(f.Name(), h.apiTokenFile()); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("write the home's API token: %w", err)
	}
	return h.APIToken()
}
