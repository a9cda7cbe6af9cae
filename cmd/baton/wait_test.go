package main_test

import "testing"

// failFirst is the t a wait fails through when something must happen
// before the test stops: kill the process being waited on (or it outlives
// the test), or gather what explains the timeout.
type failFirst struct {
	testing.TB
	first func()
}

func (f failFirst) Fatalf(format string, args ...any) {
	f.TB.Helper()
	f.first()
	f.TB.Fatalf(format, args...)
}
