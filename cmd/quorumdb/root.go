package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=…"); otherwise the
// module's build info says what was built.
var version = "dev"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "quorumdb",
		Short:         "QuorumDB: a MySQL-compatible distributed SQL database",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.AddCommand(newVersionCommand())
	root.AddCommand(newProxyCommand())
	root.AddCommand(newStartCommand())
	root.AddCommand(newDemoCommand())
	root.AddCommand(newNodeCommand())
	root.AddCommand(newRangesCommand())
	root.AddCommand(newEtcdCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := "unknown"
			if info, ok := debug.ReadBuildInfo(); ok {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "quorumdb %s (commit %s, %s %s/%s)\n",
				version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
