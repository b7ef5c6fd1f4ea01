package node

import (
	"context"
	"net/http"
	"time"

	qsql "github.com/quorumdb/quorumdb/sql"
)

// clusterInfo feeds the SQL system database (quorumdb.nodes,
// quorumdb.ranges) from the same sources as `quorumdb node ls` and
// `quorumdb ranges`.
type clusterInfo struct{ n *Node }

var _ qsql.ClusterInfo = clusterInfo{}

func (c clusterInfo) Nodes(ctx context.Context) ([]qsql.SystemNode, error) {
	nodes, err := ListNodes(ctx, c.n.client)
	if err != nil {
		return nil, err
	}
	out := make([]qsql.SystemNode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, qsql.SystemNode{ID: n.ID, Name: n.Name, SQLAddr: n.SQLAddr, RPCAddr: n.RPCAddr, HTTPAddr: n.HTTPAddr, Live: n.Live})
	}
	return out, nil
}

func (c clusterInfo) Ranges(ctx context.Context) ([]qsql.SystemRange, error) {
	ranges, err := ListRanges(ctx, c.n.client, &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	out := make([]qsql.SystemRange, 0, len(ranges))
	for _, r := range ranges {
		out = append(out, qsql.SystemRange{RangeID: r.RangeID, StartKey: r.StartKey, EndKey: r.EndKey,
			Generation: r.Generation, Replicas: r.ReplicaList(), Leader: r.Leader})
	}
	return out, nil
}
