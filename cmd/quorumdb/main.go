// Command quorumdb is the single QuorumDB binary: every node, tool and demo is
// a subcommand of it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "quorumdb:", err)
		os.Exit(1)
	}
}
