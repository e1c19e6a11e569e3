// Command weft is the control plane and the operator's command line.
package main

import (
	"os"

	"github.com/weftmesh/weft/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
