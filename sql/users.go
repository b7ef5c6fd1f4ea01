package qsql

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/quorumdb/quorumdb/txn"
)

// grantsSync keeps go-mysql-server's user and grant tables (in memory,
// mysql_db.MySQLDb) in the KV store: every change (CREATE USER, GRANT,
// SET PASSWORD, …) is written as one blob in its own transaction, and a node
// reloads the blob when it differs from what it last loaded, at startup and
// before each new connection authenticates. DROP USER on one node is not
// undone on nodes that already loaded the user (LoadData only adds) until
// they restart.
type grantsSync struct {
	srv    *Server
	mu     sync.Mutex
	loaded []byte
}

var _ mysql_db.MySQLDbPersistence = (*grantsSync)(nil)

// Persist writes the serialized grant tables.
func (g *grantsSync) Persist(ctx *gms.Context, data []byte) error {
	err := g.srv.db.Run(ctx, txn.TxnOptions{}, func(ctx context.Context, t *txn.Txn) error {
		return t.Put(ctx, grantsKey(), data)
	})
	if err != nil {
		return convertTxnError("persist users and grants", err)
	}
	g.mu.Lock()
	g.loaded = append([]byte(nil), data...)
	g.mu.Unlock()
	return nil
}

// reload loads the stored grant tables if they changed.
func (g *grantsSync) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t, err := g.srv.db.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("qsql: read users and grants: %w", err)
	}
	defer func() { _ = t.Rollback(ctx) }()
	data, found, err := t.Get(ctx, grantsKey())
	if err != nil {
		return fmt.Errorf("qsql: read users and grants: %w", err)
	}
	if !found {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if bytes.Equal(data, g.loaded) {
		return nil
	}
	if err := g.srv.engine.Analyzer.Catalog.MySQLDb.LoadData(gms.NewContext(ctx), data); err != nil {
		return fmt.Errorf("qsql: load users and grants: %w", err)
	}
	g.loaded = data
	return nil
}

// NewConnection reloads changed grants before the client authenticates.
func (h *handler) NewConnection(c *mysql.Conn) {
	if err := h.srv.grants.reload(context.Background()); err != nil {
		h.srv.log.Warn("reload users and grants", "err", err)
	}
	h.srv.conns.Store(c.ConnectionID, c)
	h.Handler.NewConnection(c)
}
