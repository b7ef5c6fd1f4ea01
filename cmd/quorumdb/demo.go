package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/node/workload"
)

func newDemoCommand() *cobra.Command {
	var (
		dataDir  string
		nodes    int
		sqlPort  int
		httpPort int
		wl       string
		logLevel string
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a replicated cluster of several nodes in this one process",
		Long: `demo starts an embedded etcd and --nodes QuorumDB nodes in one process, on
127.0.0.1 (SQL ports 4000, 4001, …), with data in a temporary directory unless
--data-dir is given. Connect with any MySQL client to any node.

--workload bank runs the seed article's example live: first two concurrent
10 EUR withdrawals from a 15 EUR account through two different nodes (exactly
one may succeed), then money transfers among accounts through every node, printing
the invariant (the total never changes) every second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if wl != "" && wl != "bank" {
				return fmt.Errorf("unknown --workload %q (known: bank)", wl)
			}
			if dataDir == "" {
				d, err := os.MkdirTemp("", "quorumdb-demo-")
				if err != nil {
					return fmt.Errorf("temporary data directory: %w", err)
				}
				defer os.RemoveAll(d)
				dataDir = d
			}
			quietEngineLogs()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			fmt.Fprintf(out, "QuorumDB demo: %d nodes, data in %s\n", nodes, dataDir)
			lc, err := node.StartLocalCluster(ctx, node.LocalClusterConfig{
				Nodes:        nodes,
				DataDir:      dataDir,
				SQLBasePort:  sqlPort,
				HTTPBasePort: httpPort,
				Logger:       newCommandLogger(cmd, logLevel),
				Progress:     func(step string) { fmt.Fprintf(out, "  … %s\n", step) },
			})
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(out, "stopping the cluster")
				_ = lc.Stop(context.Background())
			}()
			fmt.Fprintf(out, "  … waiting for every range to have %d replicas\n", min(nodes, 3))
			if err := waitReplicated(ctx, lc, min(nodes, 3)); err != nil {
				fmt.Fprintf(out, "  ! %v (continuing)\n", err)
			}
			first := lc.Node(1)
			fmt.Fprintf(out, "\nCluster ready. Connect to any node:\n")
			for i, n := range lc.Nodes() {
				fmt.Fprintf(out, "  node %d: mysql -h %s -u root\n", i+1, mysqlHostPort(n.SQLAddr()))
			}
			fmt.Fprintf(out, "Admin page: http://%s\n", first.HTTPAddr())
			fmt.Fprintln(out, "Press Ctrl-C to stop.")

			if wl == "bank" {
				if err := runBankDemo(ctx, out, lc); err != nil && ctx.Err() == nil {
					return err
				}
			}
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "data directory (default: a temporary directory removed at exit)")
	f.IntVar(&nodes, "nodes", 3, "number of nodes")
	f.IntVar(&sqlPort, "sql-port", 4000, "SQL port of node 1; node i uses sql-port+i-1")
	f.IntVar(&httpPort, "http-port", 8080, "HTTP port of node 1; node i uses http-port+i-1")
	f.StringVar(&wl, "workload", "", "run a live workload: bank")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: run until interrupted)")
	return cmd
}

// waitReplicated waits (bounded) until every range in the directory lists
// at least want voters.
func waitReplicated(ctx context.Context, lc *node.LocalCluster, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		ranges, err := lc.Node(1).ClusterRanges(ctx)
		if err == nil && len(ranges) > 0 {
			ok := true
			for _, r := range ranges {
				if len(r.Replicas) < want {
					ok = false
				}
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ranges not yet replicated %d ways: %w", want, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func runBankDemo(ctx context.Context, out io.Writer, lc *node.LocalCluster) error {
	nodes := lc.Nodes()
	dbs := make([]*sql.DB, 0, len(nodes))
	for _, n := range nodes {
		db, err := workload.Open(n.SQLAddr(), "")
		if err != nil {
			return err
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	b := dbs[0]
	if len(dbs) > 1 {
		b = dbs[1]
	}
	fmt.Fprintln(out, "\nThe seed's example: 15 EUR on the account, two 10 EUR withdrawals at once through node 1 and node 2.")
	res, err := workload.TwoWithdrawals(ctx, dbs[0], b)
	if err != nil {
		return err
	}
	verdict := "correct"
	if res.Succeeded != 1 || res.FinalBalance != 5 {
		verdict = "WRONG"
	}
	fmt.Fprintf(out, "  withdrawals succeeded: %d, refused: %d, final balance: %d EUR — %s\n", res.Succeeded, res.Refused, res.FinalBalance, verdict)

	bank := &workload.Bank{DBs: dbs, Accounts: 10, Initial: 100}
	if err := bank.Setup(ctx); err != nil {
		return err
	}
	want := int64(bank.Accounts * bank.Initial)
	fmt.Fprintf(out, "\nBank: %d accounts, total %d, transfers through all %d nodes (Ctrl-C to stop)\n", bank.Accounts, want, len(dbs))
	go func() { _ = bank.Run(ctx, 4*len(dbs), uint64(time.Now().UnixNano())) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastFailure := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		total, n, err := bank.Total(ctx, dbs[0])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(out, "  total: unavailable (%v)\n", err)
			continue
		}
		mark := "invariant holds"
		if total != want || n != bank.Accounts {
			mark = "INVARIANT BROKEN"
		}
		fmt.Fprintf(out, "  transfers=%d retried=%d failed=%d total=%d over %d accounts — %s\n",
			bank.Transfers.Load(), bank.Retries.Load(), bank.Failures.Load(), total, n, mark)
		if f := bank.LastFailure(); f != "" && f != lastFailure {
			fmt.Fprintf(out, "    last failed transfer: %s\n", f)
			lastFailure = f
		}
	}
}
