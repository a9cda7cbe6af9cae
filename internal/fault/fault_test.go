package fault_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/baton-ml/baton/internal/fault"
)

var errMissing = fault.New(fault.NotFound, "no such thing")

func TestKinds(t *testing.T) {
	cases := []struct {
		err    error
		kind   fault.Kind
		status int
		exit   int
	}{
		{errors.New("disk on fire"), fault.Internal, 500, 1},
		{fault.Invalidf("params.n", "not a number"), fault.Invalid, 400, 2},
		{fmt.Errorf("look up: %w", errMissing), fault.NotFound, 404, 1},
		{fault.Errorf(fault.Conflict, "already ended"), fault.Conflict, 409, 1},
		{fault.Wrap(fault.TooLarge, errors.New("body over 1 MiB")), fault.TooLarge, 413, 2},
		{fault.Errorf(fault.Unsupported, "text/plain"), fault.Unsupported, http.StatusUnsupportedMediaType, 2},
		{fault.Errorf(fault.Unauthenticated, "no token"), fault.Unauthenticated, 401, 1},
		{fault.Errorf(fault.Forbidden, "viewer"), fault.Forbidden, 403, 1},
		{fault.Errorf(fault.Unavailable, "stopping"), fault.Unavailable, 503, 1},
	}
	for _, c := range cases {
		if got := fault.Of(c.err); got != c.kind {
			t.Errorf("%v: kind %v, want %v", c.err, got, c.kind)
		}
		if got := fault.HTTPStatus(c.err); got != c.status {
			t.Errorf("%v: status %d, want %d", c.err, got, c.status)
		}
		if got := fault.ExitCode(c.err); got != c.exit {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.exit)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", errMissing), errMissing) {
		t.Error("a sentinel is no longer itself once wrapped")
	}
	if fault.Of(nil) != fault.Internal {
		t.Error("nil has a kind")
	}
}

func TestFieldInMessage(t *testing.T) {
	err := fault.Invalidf("from", "flow f has no step %q", "x")
	if got := err.Error(); got != `from: flow f has no step "x"` {
		t.Errorf("message %q", got)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Field != "from" {
		t.Errorf("field not kept: %#v", fe)
	}
}

func ExampleHTTPStatus() {
	err := fmt.Errorf("resume run 7: %w", fault.Invalidf("from", "no such step %q", "trian"))
	fmt.Println(fault.HTTPStatus(err), fault.ExitCode(err), err)
	// Output: 400 2 resume run 7: from: no such step "trian"
}
