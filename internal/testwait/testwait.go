// Package testwait is the one way tests wait: on a condition, with a
// deadline, and with a message that says what was awaited and what was seen
// last. Tests never sleep for a fixed time to let something happen.
package testwait

import (
	"fmt"
	"time"
)

// TB is the part of testing.TB that waiting needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Poll is how often a condition is checked.
const Poll = 5 * time.Millisecond

// For waits until cond holds, checking it every Poll; after within it fails
// the test with what (and args) as the message.
func For(t TB, within time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	Until(t, within, func() (bool, string) { return cond(), "" }, what, args...)
}

// Until waits until cond reports true; cond also reports the state it saw,
// which the failure message includes, so a timeout says how far things got.
func Until(t TB, within time.Duration, cond func() (bool, string), what string, args ...any) {
	t.Helper()
	UntilEvery(t, within, Poll, cond, what, args...)
}

// UntilEvery is Until checking cond every interval instead of every Poll,
// for a condition that costs too much to ask 200 times a second: one that
// runs a process, or reads thousands of rows from the database the code
// under test is using.
func UntilEvery(t TB, within, every time.Duration, cond func() (bool, string), what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			msg := fmt.Sprintf(what, args...)
			if state != "" {
				t.Fatalf("after %v, still waiting for %s; last seen: %s", within, msg, state)
			} else {
				t.Fatalf("after %v, still waiting for %s", within, msg)
			}
			return
		}
		time.Sleep(every)
	}
}
