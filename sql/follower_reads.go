package qsql

import (
	"context"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/kv"
)

// followerReadsVar is the session (and global) system variable that makes
// READ ONLY transactions read a slightly stale snapshot served by the
// nearest replicas (like CockroachDB's default_transaction_use_follower_reads):
//
//	SET quorumdb_follower_reads = ON;
//	START TRANSACTION READ ONLY;
//	SELECT …;   -- as of txn.DB.FollowerReadTimestamp (~2 s ago), consistent
//	COMMIT;
//
// Such a transaction never waits on a range's leader once the ranges it reads
// have closed its timestamp, and keeps working on a node cut off from them.
const followerReadsVar = "quorumdb_follower_reads"

// registerSystemVariables adds QuorumDB's own system variables to
// go-mysql-server's registry (shared by every server of the process; added
// once, so a SET GLOBAL on one in-process node is not reset by another).
func registerSystemVariables() {
	if _, _, ok := gms.SystemVariables.GetGlobal(followerReadsVar); ok {
		return
	}
	gms.SystemVariables.AddSystemVariables([]gms.SystemVariable{&gms.MysqlSystemVariable{
		Name:              followerReadsVar,
		Scope:             gms.GetMysqlScope(gms.SystemVariableScope_Both),
		Dynamic:           true,
		SetVarHintApplies: false,
		Type:              types.NewSystemBoolType(followerReadsVar),
		Default:           int8(0),
	}})
}

// followerReadsOn reads the session's quorumdb_follower_reads.
func followerReadsOn(ctx *gms.Context) bool {
	v, err := ctx.GetSessionVariable(ctx, followerReadsVar)
	if err != nil {
		return false
	}
	switch b := v.(type) {
	case int8:
		return b != 0
	case bool:
		return b
	}
	return false
}

// followerReadTimestamp is the snapshot of a follower-reads transaction.
func (s *Session) followerReadTimestamp(ctx context.Context) (kv.Timestamp, error) {
	ts, err := s.srv.db.FollowerReadTimestamp(ctx)
	if err != nil {
		return 0, convertTxnError("follower read timestamp", err)
	}
	return ts, nil
}
