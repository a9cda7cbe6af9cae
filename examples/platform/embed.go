// Package platform holds the reference platform's files (README.md here)
// so that baton demo, built anywhere, can apply them; they stay ordinary
// files that a user reads, copies and changes.
package platform

import "embed"

// Files are the platform's YAML files and README.
//
//go:embed *.yaml README.md
var Files embed.FS
