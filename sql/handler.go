package qsql

import (
	"context"
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
)

// handler wraps go-mysql-server's connection handler at the wire boundary:
//   - every error leaves as the MySQL code a client expects (errmap.go);
//   - an autocommit statement that fails with a serialization conflict before
//     it sent anything to the client is run again, transparently, so clients
//     only see 1213 inside explicit transactions.
type handler struct {
	mysql.Handler
	srv *Server
}

// retryable reports whether a statement on conn may be re-run after a
// serialization failure: only in autocommit mode outside BEGIN.
func (h *handler) retryable(c *mysql.Conn) bool {
	sess := h.srv.session(c.ConnectionID)
	if sess == nil || sess.GetIgnoreAutoCommit() {
		return false
	}
	v, err := sess.GetSessionVariable(nil, "autocommit")
	if err != nil {
		return false
	}
	return truthy(v)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int8:
		return x != 0
	case int16:
		return x != 0
	case int32:
		return x != 0
	case int64:
		return x != 0
	case int:
		return x != 0
	case uint64:
		return x != 0
	case string:
		return x == "1" || x == "ON" || x == "on" || x == "true"
	}
	return false
}

// runRetrying runs one statement attempt after another while the failure is a
// serialization conflict, nothing reached the client, and the statement is an
// autocommit one.
func (h *handler) runRetrying(ctx context.Context, c *mysql.Conn, attempt func(sent *bool) error) error {
	backoff := h.srv.cfg.RetryBackoff
	for n := 0; ; n++ {
		canRetry := h.retryable(c)
		sent := false
		err := attempt(&sent)
		if err == nil {
			return nil
		}
		mapped := h.srv.errs.mapError(err)
		if !canRetry || sent || n+1 >= h.srv.cfg.MaxStatementRetries || !isSerializationFailure(mapped) {
			return mapped
		}
		h.srv.metrics.retries.Add(1)
		if h.srv.cfg.Knobs.OnStatementRetry != nil {
			h.srv.cfg.Knobs.OnStatementRetry(c.ConnectionID, n+1, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return mapped
		case <-t.C:
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

func isSerializationFailure(err error) bool {
	se, ok := err.(*mysql.SQLError)
	return ok && se.Num == mysql.ERLockDeadlock
}

func (h *handler) ComQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) error {
	return h.runRetrying(ctx, c, func(sent *bool) error {
		return h.Handler.ComQuery(ctx, c, query, func(r *sqltypes.Result, more bool) error {
			*sent = true
			return callback(r, more)
		})
	})
}

func (h *handler) ComStmtExecute(ctx context.Context, c *mysql.Conn, prepare *mysql.PrepareData, callback func(*sqltypes.Result) error) error {
	return h.runRetrying(ctx, c, func(sent *bool) error {
		return h.Handler.ComStmtExecute(ctx, c, prepare, func(r *sqltypes.Result) error {
			*sent = true
			return callback(r)
		})
	})
}

func (h *handler) ComMultiQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) (string, error) {
	rest, err := h.Handler.ComMultiQuery(ctx, c, query, callback)
	return rest, h.srv.errs.mapError(err)
}

func (h *handler) ComPrepare(ctx context.Context, c *mysql.Conn, query string, prepare *mysql.PrepareData) ([]*querypb.Field, error) {
	fields, err := h.Handler.ComPrepare(ctx, c, query, prepare)
	return fields, h.srv.errs.mapError(err)
}

func (h *handler) ComInitDB(c *mysql.Conn, schemaName string) error {
	return h.srv.errs.mapError(h.Handler.ComInitDB(c, schemaName))
}

func (h *handler) ConnectionClosed(c *mysql.Conn) {
	h.srv.conns.Delete(c.ConnectionID)
	h.Handler.ConnectionClosed(c)
	if sess := h.srv.session(c.ConnectionID); sess != nil {
		sess.Close(context.Background())
		h.srv.sessions.Delete(c.ConnectionID)
	}
}

var _ gms.Session = (*Session)(nil)
