package online

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/featuretest"
)

func TestOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, url := range []string{"", "memory"} {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		if _, ok := s.(*feature.Memory); !ok || Persistent(s) {
			t.Errorf("Open(%q) = %T (persistent %v); want the embedded store", url, s, Persistent(s))
		}
		s.Close()
	}
	for _, url := range []string{"redis", "postgres://127.0.0.1/x", "Memory", "http://127.0.0.1:6379"} {
		_, err := Open(ctx, url)
		if !errors.Is(err, ErrUnknownURL) || !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), url) {
			t.Errorf("Open(%q): %v; want ErrUnknownURL, invalid input, naming the URL", url, err)
		}
	}
	// Port 1 on loopback refuses at once: the error names the address.
	if _, err := Open(ctx, "redis://127.0.0.1:1/0"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Open of a dead Redis: %v; want an error naming its address", err)
	}
	if _, err := Open(ctx, "redis://127.0.0.1:6379/notadb"); err == nil || errors.Is(err, ErrUnknownURL) {
		t.Errorf("Open of a malformed redis URL: %v; want Redis's own complaint", err)
	}

	url := testRedisURL()
	s, err := Open(ctx, url)
	if err != nil {
		featuretest.NeedService(t, "Redis at "+url, err)
	}
	defer s.Close()
	if r, ok := s.(*Redis); !ok || r.prefix != Prefix || !Persistent(s) {
		t.Errorf("Open(%q) = %T; want Redis under prefix %q", url, s, Prefix)
	}
}
