//go:build race

package cli

// raceOn: the race detector slows the embedded SQLite (transpiled C) about
// tenfold, so the largest tests scale down under it.
const raceOn = true
