package qsql

import (
	"context"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/kv"
)

// followerReadsVar is the session (and global) system variable that makes
// READ ONLY transactions, and autocommit SELECT statements, read a slightly
// stale snapshot served by the nearest replicas (like CockroachDB's
// default_transaction_use_follower_reads, and TiDB's tidb_read_staleness for
// the autocommit statements):
//
//	SET quorumdb_follower_reads = ON;
//	SELECT …;   -- as of txn.DB.FollowerReadTimestamp (~2 s ago)
//	START TRANSACTION READ ONLY;
//	SELECT …;   -- one consistent snapshot at that timestamp
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
func followerReadsOn(ctx *gms.Context) bool { return sessionBool(ctx, followerReadsVar) }

// sessionBool reads a boolean session variable (false when unset).
func sessionBool(ctx *gms.Context, name string) bool {
	v, err := ctx.GetSessionVariable(ctx, name)
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

// isPlainSelect reports whether query is a SELECT that takes no locks and
// writes nothing (no FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE / INTO),
// after leading blanks, comments and parentheses. A false positive is safe:
// the statement then runs in a READ ONLY transaction and a write in it is
// refused (1792); a false negative only reads the present.
func isPlainSelect(query string) bool {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n(")
		switch {
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q, "*/")
			if end < 0 {
				return false
			}
			q = q[end+2:]
		case strings.HasPrefix(q, "-- "), strings.HasPrefix(q, "#"):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return false
			}
			q = q[end+1:]
		default:
			if len(q) < 7 || !strings.EqualFold(q[:6], "select") || !isSpaceOrParen(q[6]) {
				return false
			}
			lower := strings.ToLower(q)
			for _, locking := range []string{"for update", "for share", "lock in share mode", " into "} {
				if strings.Contains(lower, locking) {
					return false
				}
			}
			return true
		}
	}
}

func isSpaceOrParen(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' }

// followerReadTimestamp is the snapshot of a follower-reads transaction.
func (s *Session) followerReadTimestamp(ctx context.Context) (kv.Timestamp, error) {
	ts, err := s.srv.db.FollowerReadTimestamp(ctx)
	if err != nil {
		return 0, convertTxnError("follower read timestamp", err)
	}
	return ts, nil
}
