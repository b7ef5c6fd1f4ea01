package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quorumdb/quorumdb/node"
)

func newStartCommand() *cobra.Command {
	var (
		cfg        node.Config
		etcd       string
		logLevel   string
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run one QuorumDB node",
		Long: `start runs one node: its share of the replicated store, the MySQL server,
the internal RPC server and the HTTP admin/metrics server.

Every flag can also come from the environment (QUORUMDB_ plus the flag name in
upper case with - as _, e.g. QUORUMDB_DATA_DIR) or from a --config file of
"flag = value" lines. The command line wins over the environment, which wins
over the file.`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnvAndConfig(cmd.Flags(), configFile)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if etcd != "" {
				cfg.EtcdEndpoints = splitList(etcd)
			}
			if !cfg.EmbeddedEtcd && len(cfg.EtcdEndpoints) == 0 {
				return fmt.Errorf("give --etcd endpoints of the cluster's etcd, or --embedded-etcd to run one in this node")
			}
			cfg.Logger = newCommandLogger(cmd, logLevel)
			quietEngineLogs()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
			n, err := node.Start(startCtx, cfg)
			cancel()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s (ID %d) ready: mysql -h %s -u root   admin http://%s/\n",
				n.Name(), n.ID(), mysqlHostPort(n.SQLAddr()), n.HTTPAddr())
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "shutting down")
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return n.Stop(stopCtx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "file of \"flag = value\" lines")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory (required)")
	f.StringVar(&cfg.Name, "node-name", "", "node name (default node-<id>)")
	f.StringVar(&cfg.Cluster, "cluster", "quorumdb", "cluster name; every node of a cluster uses the same")
	f.StringVar(&cfg.SQLAddr, "sql-addr", "127.0.0.1:4000", "MySQL listen address")
	f.StringVar(&cfg.RPCAddr, "rpc-addr", "127.0.0.1:5000", "internal RPC listen address (Raft, KV, TSO)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP admin, health and metrics address")
	f.StringVar(&etcd, "etcd", "", "comma-separated etcd client URLs")
	f.BoolVar(&cfg.EmbeddedEtcd, "embedded-etcd", false, "run a single-member etcd inside this node")
	f.StringVar(&cfg.EmbeddedEtcdClientURL, "embedded-etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	f.StringVar(&cfg.EmbeddedEtcdPeerURL, "embedded-etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd")
	f.StringVar(&cfg.RootPassword, "root-password", "", "password of the MySQL root user (required from every host when set; without it root logs in only from loopback)")
	f.Int64Var(&cfg.CacheSize, "cache-size", 64<<20, "pebble block cache size in bytes")
	f.DurationVar(&cfg.LivenessTTL, "liveness-ttl", 5*time.Second, "etcd lease TTL whose keep-alive is this node's liveness")
	f.DurationVar(&cfg.Placement.DeadNodeGrace, "dead-node-grace", 30*time.Second, "how long a node must be gone before its replicas are replaced")
	f.Uint64Var(&cfg.Placement.SplitSizeBytes, "split-size", 64<<20, "split a range whose data exceeds this many bytes")
	f.IntVar(&cfg.Placement.ReplicationFactor, "replicas", 3, "voters per range (capped by the number of live nodes)")
	f.DurationVar(&cfg.GC.Lifetime, "gc-lifetime", 10*time.Minute, "how long old row versions are kept for AS OF reads and open snapshots")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// applyEnvAndConfig fills flags not given on the command line from
// QUORUMDB_* environment variables, then from the config file.
func applyEnvAndConfig(flags *pflag.FlagSet, configFile string) error {
	fileValues := map[string]string{}
	if configFile != "" {
		f, err := os.Open(configFile)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			k, v, ok := strings.Cut(text, "=")
			if !ok {
				return fmt.Errorf("config file %s:%d: want \"flag = value\"", configFile, line)
			}
			k = strings.TrimSpace(k)
			if flags.Lookup(k) == nil {
				return fmt.Errorf("config file %s:%d: unknown setting %q", configFile, line, k)
			}
			fileValues[k] = strings.Trim(strings.TrimSpace(v), `"`)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("config file: %w", err)
		}
	}
	var err error
	flags.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || fl.Name == "config" {
			return
		}
		env := "QUORUMDB_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if !ok {
			v, ok = fileValues[fl.Name]
		}
		if ok {
			if serr := flags.Set(fl.Name, v); serr != nil {
				err = fmt.Errorf("setting %s from %s: %w", fl.Name, env, serr)
			}
		}
	})
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// mysqlHostPort renders host:port as the mysql client's "-h host -P port".
func mysqlHostPort(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr
	}
	return addr[:i] + " -P " + addr[i+1:]
}

// quietEngineLogs turns down go-mysql-server's per-connection logging (it
// logs through logrus, a process-wide logger): the node logs what matters
// through slog.
func quietEngineLogs() {
	logrus.SetLevel(logrus.WarnLevel)
}
