package qsql

import (
	"context"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// KVTxn is what the SQL layer needs from a transaction of the distributed
// store. *txn.Txn satisfies it; it is an interface so the boundary between
// the layers stays visible and small.
type KVTxn interface {
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
	BatchGet(ctx context.Context, keys [][]byte) ([]txn.GetResult, error)
	Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kv.KeyValue, error)
	NewIterator(ctx context.Context, start, end []byte, reverse bool, batchSize int) *txn.Iterator
	Put(ctx context.Context, key, value []byte) error
	Delete(ctx context.Context, key []byte) error
	Lock(ctx context.Context, key []byte) error
	Savepoint() txn.Savepoint
	RollbackTo(sp txn.Savepoint) error
	Commit(ctx context.Context) error
	StartTS() kv.Timestamp
	Rollback(ctx context.Context) error
}

// TxnDB begins transactions; *txn.DB satisfies it.
type TxnDB interface {
	Begin(ctx context.Context, opts txn.TxnOptions) (*txn.Txn, error)
	Run(ctx context.Context, opts txn.TxnOptions, fn func(context.Context, *txn.Txn) error) error
	// FollowerReadTimestamp is the snapshot of READ ONLY transactions with
	// quorumdb_follower_reads on.
	FollowerReadTimestamp(ctx context.Context) (kv.Timestamp, error)
}

var _ KVTxn = (*txn.Txn)(nil)
var _ TxnDB = (*txn.DB)(nil)
