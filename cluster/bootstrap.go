package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const bootstrapPath = "bootstrap"

// ClaimBootstrap decides, once per cluster, which node bootstraps it (creates
// the first range). The first caller wins; every caller, then and later,
// learns the winner's node ID. The claim only says who should bootstrap: the
// bootstrapped state itself lives in that node's Raft state.
func (c *Client) ClaimBootstrap(ctx context.Context, nodeID uint64) (won bool, owner uint64, err error) {
	if nodeID == 0 {
		return false, 0, fmt.Errorf("cluster: claim bootstrap: node ID 0: %w", ErrInvalidArgument)
	}
	key := c.key(bootstrapPath)
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, formatUint(nodeID))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, 0, wrapEtcdErr("claim bootstrap", err)
	}
	if resp.Succeeded {
		return true, nodeID, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, 0, fmt.Errorf("cluster: claim bootstrap: claim vanished")
	}
	owner, err = parseUint(kvs[0].Value)
	if err != nil {
		return false, 0, fmt.Errorf("cluster: bootstrap claim holds %q: %w", kvs[0].Value, err)
	}
	return owner == nodeID, owner, nil
}
