package qsql

import (
	"context"
	"fmt"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/quorumdb/quorumdb/txn"
)

// Session is one client connection's state: go-mysql-server's base session
// plus the KV transaction behind the engine's current sql.Transaction.
type Session struct {
	*gms.BaseSession
	srv *Server
	// open is the transaction last handed to the engine and not yet
	// finished. go-mysql-server may drop an autocommit transaction after an
	// error without calling Rollback (clearAutocommitTransaction); the next
	// StartTransaction or ValidateSession rolls such a leftover back.
	open *Transaction
	// asOf holds the AS OF snapshots of the running statement (asof.go).
	asOf statementSnapshots
}

var _ gms.TransactionSession = (*Session)(nil)

func (s *Server) newSession(ctx context.Context, conn *mysql.Conn, addr string) (gms.Session, error) {
	base, err := gms.BaseSessionFromConnection(ctx, conn, addr)
	if err != nil {
		return nil, fmt.Errorf("qsql: new session: %w", err)
	}
	sess := &Session{BaseSession: base, srv: s}
	s.sessions.Store(conn.ConnectionID, sess)
	return sess, nil
}

// NewSession returns a session not bound to a connection (tests, the
// enginetest harness, internal statements).
func (s *Server) NewSession(id uint32) *Session {
	base := gms.NewBaseSessionWithClientServer(s.addr(), gms.Client{Address: "localhost", User: "root"}, id)
	return &Session{BaseSession: base, srv: s}
}

// StartTransaction hands the engine a new transaction. The KV transaction
// (and its start timestamp) is taken lazily on first use, because the
// engine calls this before every statement, SET and SELECT 1 included.
func (s *Session) StartTransaction(ctx *gms.Context, chars gms.TransactionCharacteristic) (gms.Transaction, error) {
	s.abandonOpen(ctx)
	t := &Transaction{sess: s, readOnly: chars == gms.ReadOnly}
	if followerReadsOn(ctx) {
		// An autocommit SELECT is a read-only transaction of its own: with
		// follower reads on, it reads the follower-read snapshot too.
		if !t.readOnly && sessionBool(ctx, "autocommit") && isPlainSelect(ctx.Query()) {
			t.readOnly = true
		}
		t.followerReads = t.readOnly
	}
	s.open = t
	return t, nil
}

// abandonOpen rolls back a transaction the engine forgot about.
func (s *Session) abandonOpen(ctx context.Context) {
	if s.open == nil {
		return
	}
	t := s.open
	s.open = nil
	if err := t.finish(ctx, false); err != nil {
		s.srv.log.Debug("rollback of abandoned transaction failed", "conn", s.ID(), "err", err)
	}
}

// CommitTransaction commits tx. On failure the KV transaction is rolled
// back and detached, so the session starts clean.
func (s *Session) CommitTransaction(ctx *gms.Context, tx gms.Transaction) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("qsql: commit of foreign transaction %T", tx)
	}
	if s.open == t {
		s.open = nil
	}
	if err := t.finish(ctx, true); err != nil {
		ctx.SetTransaction(nil)
		ctx.SetIgnoreAutoCommit(false)
		return err
	}
	return nil
}

// Rollback aborts tx.
func (s *Session) Rollback(ctx *gms.Context, tx gms.Transaction) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("qsql: rollback of foreign transaction %T", tx)
	}
	if s.open == t {
		s.open = nil
	}
	return t.finish(ctx, false)
}

// CreateSavepoint records name at the current write position (replacing an
// older savepoint of that name, as MySQL does).
func (s *Session) CreateSavepoint(ctx *gms.Context, tx gms.Transaction, name string) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("qsql: savepoint in foreign transaction %T", tx)
	}
	k, err := t.kv(ctx)
	if err != nil {
		return err
	}
	t.dropSavepoint(name)
	t.savepoints = append(t.savepoints, namedSavepoint{name: strings.ToLower(name), sp: k.Savepoint()})
	return nil
}

// RollbackToSavepoint undoes the writes made after the savepoint; the
// savepoint stays, later ones are released (MySQL semantics).
func (s *Session) RollbackToSavepoint(ctx *gms.Context, tx gms.Transaction, name string) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("qsql: savepoint in foreign transaction %T", tx)
	}
	i := t.findSavepoint(name)
	if i < 0 {
		return gms.ErrSavepointDoesNotExist.New(name)
	}
	if err := t.kvt.RollbackTo(t.savepoints[i].sp); err != nil {
		return convertTxnError("rollback to savepoint", err)
	}
	t.savepoints = t.savepoints[:i+1]
	t.invalidateSchema()
	return nil
}

// ReleaseSavepoint forgets the savepoint and every later one.
func (s *Session) ReleaseSavepoint(ctx *gms.Context, tx gms.Transaction, name string) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("qsql: savepoint in foreign transaction %T", tx)
	}
	i := t.findSavepoint(name)
	if i < 0 {
		return gms.ErrSavepointDoesNotExist.New(name)
	}
	t.savepoints = t.savepoints[:i]
	return nil
}

// ValidateSession runs before every statement. It guards a go-mysql-server
// v0.20.0 pitfall: an autocommit transaction that survived an error during
// analysis or iteration would otherwise be reused by the next statement,
// reading at a stale snapshot (or committing half a failed statement).
func (s *Session) ValidateSession(ctx *gms.Context) error {
	if ctx.GetTransaction() != nil && !ctx.GetIgnoreAutoCommit() {
		autocommit, err := plan.IsSessionAutocommit(ctx)
		if err != nil {
			return err
		}
		if autocommit {
			if t, ok := ctx.GetTransaction().(*Transaction); ok {
				if s.open == t {
					s.open = nil
				}
				if err := t.finish(ctx, false); err != nil {
					s.srv.log.Debug("rollback of stale autocommit transaction failed", "conn", s.ID(), "err", err)
				}
			}
			ctx.SetTransaction(nil)
		}
	}
	s.abandonOpenIfDetached(ctx)
	s.asOf.startStatement(ctx)
	return s.BaseSession.ValidateSession(ctx)
}

// abandonOpenIfDetached rolls back the session's open transaction when the
// engine no longer holds it.
func (s *Session) abandonOpenIfDetached(ctx *gms.Context) {
	if s.open != nil && ctx.GetTransaction() != gms.Transaction(s.open) {
		s.abandonOpen(ctx)
	}
}

// inExplicitTxn reports whether the client opened a transaction (BEGIN or
// autocommit off): statements then cannot be retried by the server.
func (s *Session) inExplicitTxn(ctx *gms.Context) bool {
	if s.GetIgnoreAutoCommit() {
		return true
	}
	autocommit, err := plan.IsSessionAutocommit(ctx)
	return err != nil || !autocommit
}

// Close ends the session, rolling back whatever it left open.
func (s *Session) Close(ctx context.Context) {
	s.asOf.endAll()
	s.abandonOpen(ctx)
	if tx := s.GetTransaction(); tx != nil {
		if t, ok := tx.(*Transaction); ok {
			_ = t.finish(ctx, false)
		}
	}
}

type namedSavepoint struct {
	name string
	sp   txn.Savepoint
}

// Transaction is the sql.Transaction the engine holds. It owns at most one
// KV transaction, begun on first use.
type Transaction struct {
	sess     *Session
	readOnly bool
	// followerReads: a READ ONLY transaction begun with
	// quorumdb_follower_reads on reads at the follower-read timestamp.
	followerReads bool
	kvt           KVTxn
	savepoints    []namedSavepoint
	finished      bool
	schema        *schemaCache
	// schemaChanged: this transaction changed the schema, so Table
	// objects resolved earlier may be stale.
	schemaChanged bool
	// addColumnFill: the running ADD COLUMN already filled this column.
	addColumnFill *columnFill
	statementState
}

var _ gms.Transaction = (*Transaction)(nil)

func (t *Transaction) String() string {
	if t.kvt == nil {
		return "qsql transaction (not started)"
	}
	return fmt.Sprintf("qsql transaction %p", t.kvt)
}

// IsReadOnly reports START TRANSACTION READ ONLY.
func (t *Transaction) IsReadOnly() bool { return t.readOnly }

// kv returns the KV transaction, beginning it on first use.
func (t *Transaction) kv(ctx context.Context) (KVTxn, error) {
	if t.finished {
		return nil, fmt.Errorf("qsql: transaction already finished")
	}
	if t.kvt != nil {
		return t.kvt, nil
	}
	opts := txn.TxnOptions{ReadOnly: t.readOnly}
	if t.followerReads {
		ts, err := t.sess.followerReadTimestamp(ctx)
		if err != nil {
			return nil, err
		}
		opts.AsOf = ts
	}
	k, err := t.sess.srv.db.Begin(ctx, opts)
	if err != nil {
		return nil, convertTxnError("begin transaction", err)
	}
	t.kvt = k
	return k, nil
}

// finish commits or rolls back the KV transaction (if one was begun).
func (t *Transaction) finish(ctx context.Context, commit bool) error {
	if t.finished {
		return nil
	}
	t.finished = true
	t.savepoints = nil
	t.schema = nil
	if t.kvt == nil {
		return nil
	}
	if commit && t.overlay != nil {
		// A statement that never completed (no StatementComplete): keep
		// its writes, as the engine considered it done.
		if err := t.completeStatement(ctx); err != nil {
			_ = t.kvt.Rollback(ctx)
			return err
		}
	}
	if commit {
		if hook := t.sess.srv.cfg.Knobs.BeforeCommit; hook != nil {
			hook(t.sess.ID())
		}
		if err := t.kvt.Commit(ctx); err != nil {
			if rbErr := t.kvt.Rollback(ctx); rbErr != nil {
				t.sess.srv.log.Debug("rollback after failed commit", "err", rbErr)
			}
			return convertTxnError("commit", err)
		}
		return nil
	}
	if err := t.kvt.Rollback(ctx); err != nil {
		return convertTxnError("rollback", err)
	}
	return nil
}

func (t *Transaction) findSavepoint(name string) int {
	name = strings.ToLower(name)
	for i := len(t.savepoints) - 1; i >= 0; i-- {
		if t.savepoints[i].name == name {
			return i
		}
	}
	return -1
}

func (t *Transaction) dropSavepoint(name string) {
	if i := t.findSavepoint(name); i >= 0 {
		t.savepoints = append(t.savepoints[:i], t.savepoints[i+1:]...)
	}
}

// invalidateSchema drops the schema cache after a DDL change.
func (t *Transaction) invalidateSchema() {
	t.schema = nil
	t.schemaChanged = true
}
