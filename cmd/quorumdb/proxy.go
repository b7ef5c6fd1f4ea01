package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quorumdb/quorumdb/node/proxy"
)

func newProxyCommand() *cobra.Command {
	var (
		listen   string
		backends []string
		policy   string
		interval time.Duration
		user     string
		password string
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Load-balance MySQL connections over live QuorumDB nodes",
		Long: `proxy listens on one port and forwards each MySQL connection to a live node.
Every node is health-checked each --check-interval with a MySQL ping and, when an
HTTP address is given, GET /ready; a failing node is taken out within two intervals
and put back after one passing check.

Backends are given as NAME=SQL_ADDR[,HTTP_ADDR], for example
  --backend n1=127.0.0.1:4000,127.0.0.1:8080 --backend n2=127.0.0.1:4001,127.0.0.1:8081`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bs, err := parseBackends(backends)
			if err != nil {
				return err
			}
			p, err := proxy.New(proxy.Config{
				ListenAddr:    listen,
				Backends:      bs,
				Policy:        proxy.Policy(policy),
				CheckInterval: interval,
				User:          user,
				Password:      password,
				Logger:        newCommandLogger(cmd, "info"),
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "proxy listening on %s (%s over %d backends)\n", p.Addr(), policyOrDefault(policy), len(bs))
			errc := make(chan error, 1)
			go func() { errc <- p.Serve(ctx) }()
			select {
			case <-ctx.Done():
			case err = <-errc:
			}
			p.Close()
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:3306", "address clients connect to")
	f.StringArrayVar(&backends, "backend", nil, "a node as NAME=SQL_ADDR[,HTTP_ADDR] (repeat)")
	f.StringVar(&policy, "policy", string(proxy.RoundRobin), "round-robin or least-connections")
	f.DurationVar(&interval, "check-interval", time.Second, "time between health checks")
	f.StringVar(&user, "check-user", "root", "MySQL user for health-check pings")
	f.StringVar(&password, "check-password", "", "MySQL password for health-check pings")
	return cmd
}

func policyOrDefault(p string) string {
	if p == "" {
		return string(proxy.RoundRobin)
	}
	return p
}

func parseBackends(specs []string) ([]proxy.Backend, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("at least one --backend is required")
	}
	out := make([]proxy.Backend, 0, len(specs))
	for _, s := range specs {
		name, addrs, ok := strings.Cut(s, "=")
		if !ok || name == "" || addrs == "" {
			return nil, fmt.Errorf("bad --backend %q: want NAME=SQL_ADDR[,HTTP_ADDR]", s)
		}
		sqlAddr, httpAddr, _ := strings.Cut(addrs, ",")
		out = append(out, proxy.Backend{Name: name, SQLAddr: sqlAddr, HTTPAddr: httpAddr})
	}
	return out, nil
}
