// Command baton runs flows, signals, features, models and experiments.
// See README.md; the commands live in internal/cli.
package main

import (
	"os"

	"github.com/baton-ml/baton/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
