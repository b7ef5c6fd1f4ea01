package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/quorumdb/quorumdb/cluster"
)

func newEtcdCommand() *cobra.Command {
	var (
		cfg      cluster.EmbeddedEtcdConfig
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Run a standalone etcd member for a QuorumDB cluster",
		Long: `etcd runs one etcd member in this process, so a multi-process cluster needs
no other download. Alone it is a single-member etcd; for a static 3-member
cluster start three with the same --initial-cluster:

  quorumdb etcd --name e1 --data-dir e1 --client-url http://127.0.0.1:2379 \
    --peer-url http://127.0.0.1:2380 \
    --initial-cluster e1=http://127.0.0.1:2380,e2=http://127.0.0.1:2382,e3=http://127.0.0.1:2384

Nodes then join with quorumdb start --etcd=<client URLs>. Any etcd v3 client
(etcdctl) can use the member. It runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dir == "" {
				return fmt.Errorf("etcd: --data-dir is required")
			}
			cfg.Logger = newLogger(cmd.ErrOrStderr(), logLevel)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runEtcdMember(ctx, cmd, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "data-dir", "", "member data directory (required)")
	f.StringVar(&cfg.Name, "name", "default", "member name, as used in --initial-cluster")
	f.StringVar(&cfg.ClientURL, "client-url", cluster.DefaultEtcdClientURL, "URL to serve clients on (port 0 picks a free port)")
	f.StringVar(&cfg.PeerURL, "peer-url", cluster.DefaultEtcdPeerURL, "URL to serve the other members on")
	f.StringVar(&cfg.InitialCluster, "initial-cluster", "", "static member list name=peerURL,…; empty for a single member")
	f.StringVar(&cfg.InitialClusterState, "initial-cluster-state", "new", "new, or existing to join a running cluster after `member add`")
	f.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", "quorumdb", "token distinguishing clusters with the same member list")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 2*cluster.DefaultEtcdReadyTimeout, "how long to wait for a quorum of the initial cluster")
	f.StringVar(&logLevel, "log-level", "warn", "etcd log level: debug, info, warn or error")
	return cmd
}

// runEtcdMember serves until ctx ends or the member fails.
func runEtcdMember(ctx context.Context, cmd *cobra.Command, cfg cluster.EmbeddedEtcdConfig) error {
	e, err := cluster.StartEmbeddedEtcd(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Fprintf(cmd.OutOrStdout(), "etcd member %s serving clients at %s\n", e.Name(), e.Endpoints()[0])
	select {
	case <-ctx.Done():
		fmt.Fprintf(cmd.OutOrStdout(), "etcd member %s stopping\n", e.Name())
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s failed: %w", e.Name(), err)
	}
}
