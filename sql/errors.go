package qsql

import (
	"errors"
	"fmt"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/txn"
)

// Errors of the SQL layer. Errors go-mysql-server must recognise (unique
// violations, serialization failures, missing tables) are returned as the
// engine's own kinds instead, unwrapped, because the engine switches on them.
var (
	// ErrNoTransaction: a write reached a table outside any transaction
	// (go-mysql-server always opens one before executing a statement).
	ErrNoTransaction = errors.New("qsql: no transaction attached to the session")
)

// convertTxnError turns an error of the transaction layer into the form
// go-mysql-server and the client understand:
//   - serialization conflicts become sql.ErrLockDeadlock (MySQL 1213, SQLSTATE
//     40001), unwrapped, since the engine matches the kind exactly;
//   - lock wait timeouts become MySQL 1205 directly;
//   - anything else keeps its chain with context.
func convertTxnError(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *txn.SerializationError
	if errors.As(err, &se) {
		return gms.ErrLockDeadlock.New(err.Error())
	}
	var lw *txn.LockWaitTimeoutError
	if errors.As(err, &lw) {
		return mysql.NewSQLError(mysql.ERLockWaitTimeout, "HY000", "Lock wait timeout exceeded; try restarting transaction (%s)", err.Error())
	}
	if txn.IsRetryable(err) {
		return gms.ErrLockDeadlock.New(err.Error())
	}
	if gms.ErrLockDeadlock.Is(err) {
		return err
	}
	var sqlErr *mysql.SQLError
	if errors.As(err, &sqlErr) {
		return sqlErr
	}
	return fmt.Errorf("%s: %w", op, err)
}

// convertCatalogError maps catalog sentinel errors onto the engine's kinds.
func convertCatalogError(op, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, catalog.ErrDatabaseExists):
		return gms.ErrDatabaseExists.New(name)
	case errors.Is(err, catalog.ErrDatabaseNotFound):
		return gms.ErrDatabaseNotFound.New(name)
	case errors.Is(err, catalog.ErrTableExists):
		return gms.ErrTableAlreadyExists.New(name)
	case errors.Is(err, catalog.ErrTableNotFound):
		return gms.ErrTableNotFound.New(name)
	}
	return convertTxnError(op, err)
}
