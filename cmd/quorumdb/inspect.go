package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/node"
)

// clusterFlags are the flags every inspection command takes to reach etcd.
type clusterFlags struct {
	etcd    string
	cluster string
	format  string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.etcd, "etcd", "http://127.0.0.1:2379", "comma-separated etcd client URLs")
	cmd.Flags().StringVar(&f.cluster, "cluster", "quorumdb", "cluster name")
	cmd.Flags().StringVar(&f.format, "format", "table", "table or json")
}

func (f *clusterFlags) connect(ctx context.Context) (*cluster.Client, error) {
	if f.format != "table" && f.format != "json" {
		return nil, fmt.Errorf("unknown --format %q (table or json)", f.format)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cluster.Connect(ctx, splitList(f.etcd), f.cluster)
}

func newNodeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Inspect the cluster's nodes"}
	var f clusterFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the nodes of the cluster with their addresses and liveness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			nodes, err := node.ListNodes(cmd.Context(), c)
			if err != nil {
				return err
			}
			if f.format == "json" {
				return writeJSONTo(cmd.OutOrStdout(), nodes)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSQL\tRPC\tHTTP\tLIVE")
			for _, n := range nodes {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\n", n.ID, n.Name, n.SQLAddr, n.RPCAddr, n.HTTPAddr, n.Live)
			}
			return tw.Flush()
		},
	}
	f.register(ls)
	cmd.AddCommand(ls)
	return cmd
}

func newRangesCommand() *cobra.Command {
	var f clusterFlags
	var sample time.Duration
	cmd := &cobra.Command{
		Use:   "ranges",
		Short: "List the cluster's ranges: span, replicas, leader, size and apply rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ranges, err := node.ListRanges(cmd.Context(), c, &http.Client{Timeout: 3 * time.Second})
			if err != nil {
				return err
			}
			load, err := node.ListRangeLoad(cmd.Context(), c, sample)
			if err != nil {
				return err
			}
			if f.format == "json" {
				type row struct {
					node.RangeStatus
					node.RangeLoad
				}
				rows := make([]row, 0, len(ranges))
				for _, r := range ranges {
					rows = append(rows, row{r, load[r.RangeID]})
				}
				return writeJSONTo(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RANGE\tSTART\tEND\tGEN\tREPLICAS\tLEADER\tSIZE\tAPPLIES/S")
			for _, r := range ranges {
				leader := "?"
				if r.Leader != 0 {
					leader = fmt.Sprintf("n%d", r.Leader)
				}
				size, rate := "?", "?"
				if l, ok := load[r.RangeID]; ok {
					size, rate = fmt.Sprintf("%d", l.SizeBytes), fmt.Sprintf("%.1f", l.AppliesPerSec)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.RangeID, r.StartKey, r.EndKey, r.Generation, r.ReplicaList(), leader, size, rate)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().DurationVar(&sample, "sample", time.Second, "how long to measure each range's apply rate")
	return cmd
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
