// Package fault sorts errors into the few kinds a caller acts on — the
// input is wrong, a thing does not exist, the state forbids it, who asks
// may not — and maps each kind to one HTTP status and one exit code, so the
// CLI and the HTTP API answer the same error the same way.
//
// A package marks its errors by kind without knowing about HTTP or exit
// codes: a sentinel made with New, an *Error from Invalid/Wrap, or any
// error type with an Is method that matches a Kind. Callers ask with
// errors.Is(err, fault.NotFound) or Of(err), never by an error's text.
package fault

import (
	"errors"
	"fmt"
)

// Kind is what went wrong, as far as the caller can act on it.
type Kind uint8

// The kinds. Internal is any error no package marked: a bug or an outage.
const (
	Internal        Kind = iota
	Invalid              // the input is wrong: fix it and try again
	NotFound             // a named thing does not exist
	Conflict             // the current state forbids it (a duplicate, an illegal transition)
	Unauthenticated      // no valid credentials
	Forbidden            // credentials valid, permission missing
	TooLarge             // the input is over a limit
	Unsupported          // the request's media type is not accepted
	Unavailable          // a dependency is down or the process is stopping: retry later
)

var names = [...]string{"internal error", "invalid input", "not found", "conflict", "unauthenticated",
	"forbidden", "too large", "unsupported media type", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind %d", k)
}

// Error makes a Kind usable as an errors.Is target.
func (k Kind) Error() string { return k.String() }

// Of reports the kind of err: the first kind any error in its tree matches.
func Of(err error) Kind {
	if err == nil {
		return Internal
	}
	for _, k := range []Kind{Invalid, NotFound, Conflict, Unauthenticated, Forbidden, TooLarge, Unsupported, Unavailable} {
		if errors.Is(err, k) {
			return k
		}
	}
	return Internal
}

// HTTPStatus is the one status code for err's kind. The codes are written
// as numbers, not net/http's constants: every package marks its errors with
// fault, and marking an error must not link an HTTP stack (the orchestrator
// is built without one).
func HTTPStatus(err error) int {
	switch Of(err) {
	case Invalid:
		return 400
	case NotFound:
		return 404
	case Conflict:
		return 409
	case Unauthenticated:
		return 401
	case Forbidden:
		return 403
	case TooLarge:
		return 413
	case Unsupported:
		return 415
	case Unavailable:
		return 503
	}
	return 500
}

// Exit codes of the CLI's public contract.
const (
	ExitFailed = 1 // the action ran and failed, or could not run
	ExitUsage  = 2 // the command or its input is wrong
)

// ExitCode is the one CLI exit code for err's kind: 2 when the input must
// change, else 1.
func ExitCode(err error) int {
	switch Of(err) {
	case Invalid, TooLarge, Unsupported:
		return ExitUsage
	}
	return ExitFailed
}

// Error is an error of a kind, naming the field of the input it came from
// (a JSON field path or a YAML key) when there is one.
type Error struct {
	Kind  Kind
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches e's kind, so errors.Is(err, fault.Invalid) finds it.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Invalidf reports bad input in field (empty when the input as a whole is
// wrong).
func Invalidf(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Err: fmt.Errorf(format, args...)}
}

// Wrap marks err as of kind k, keeping it for errors.Is/As.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// Errorf is an error of kind k.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// New makes a sentinel error of kind k: errors.Is(err, sentinel) tells it
// apart from others, and errors.Is(err, k) sorts it.
func New(k Kind, msg string) error { return &sentinel{k, msg} }

type sentinel struct {
	kind Kind
	msg  string
}

func (s *sentinel) Error() string { return s.msg }

func (s *sentinel) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == s.kind
}

// OfStatus is the kind an HTTP status reports: a client of the API sorts
// the server's answer as the server sorted the error.
func OfStatus(code int) Kind {
	switch code {
	case 400, 422:
		return Invalid
	case 404:
		return NotFound
	case 409:
		return Conflict
	case 401:
		return Unauthenticated
	case 403:
		return Forbidden
	case 413:
		return TooLarge
	case 415:
		return Unsupported
	case 503, 502, 504:
		return Unavailable
	}
	return Internal
}
