//go:build race

package ui_test

// raceOn: the race detector slows the embedded SQLite (transpiled C) about
// tenfold, so the timed browser test scales its run down under it.
const raceOn = true
