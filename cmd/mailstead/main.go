// Command mailstead is the all-in-one mail server: `mailstead serve` runs
// it, the other subcommands administer it. See README.md.
package main

import (
	"os"

	"github.com/mailstead/mailstead/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
