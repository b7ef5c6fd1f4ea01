package qsql

import (
	"sort"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
)

// Provider is the engine's catalog of databases, read from the KV store in
// the session's transaction (so DDL committed on any node is seen by the
// next transaction on every node).
type Provider struct {
	srv *Server
}

var _ gms.MutableDatabaseProvider = (*Provider)(nil)

func newProvider(s *Server) *Provider { return &Provider{srv: s} }

// Database returns the named database.
func (p *Provider) Database(ctx *gms.Context, name string) (gms.Database, error) {
	if isSystemDatabase(name) && p.srv.cfg.ClusterInfo != nil {
		return sysDatabase{info: p.srv.cfg.ClusterInfo}, nil
	}
	db, found, err := p.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, gms.ErrDatabaseNotFound.New(name)
	}
	return db, nil
}

func (p *Provider) lookup(ctx *gms.Context, name string) (*Database, bool, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, false, err
	}
	defer release()
	cache := schemaCacheOf(ctx)
	d, found, err := p.srv.store.getDatabase(ctx, kvt, cache, name)
	if err != nil || !found {
		return nil, false, err
	}
	return &Database{srv: p.srv, desc: d}, true, nil
}

// HasDatabase reports whether the database exists.
func (p *Provider) HasDatabase(ctx *gms.Context, name string) bool {
	if isSystemDatabase(name) && p.srv.cfg.ClusterInfo != nil {
		return true
	}
	_, found, err := p.lookup(ctx, name)
	return err == nil && found
}

// AllDatabases lists every database, sorted by name.
func (p *Provider) AllDatabases(ctx *gms.Context) []gms.Database {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		p.srv.log.Warn("list databases", "err", err)
		return nil
	}
	defer release()
	descs, err := p.srv.store.listDatabases(ctx, kvt)
	if err != nil {
		p.srv.log.Warn("list databases", "err", err)
		return nil
	}
	out := make([]gms.Database, 0, len(descs)+1)
	for _, d := range descs {
		out = append(out, &Database{srv: p.srv, desc: d})
	}
	if p.srv.cfg.ClusterInfo != nil {
		out = append(out, sysDatabase{info: p.srv.cfg.ClusterInfo})
	}
	sort.Slice(out, func(i, j int) bool {
		return strings.ToLower(out[i].Name()) < strings.ToLower(out[j].Name())
	})
	return out
}

// CreateDatabase creates an empty database.
func (p *Provider) CreateDatabase(ctx *gms.Context, name string) error {
	return p.CreateCollatedDatabase(ctx, name, gms.Collation_Default)
}

// CreateCollatedDatabase creates an empty database with a default collation.
func (p *Provider) CreateCollatedDatabase(ctx *gms.Context, name string, collation gms.CollationID) error {
	if isSystemDatabase(name) {
		return gms.ErrDatabaseExists.New(name)
	}
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	return p.srv.store.createDatabase(ctx, kvt, name, collation)
}

// DropDatabase drops the database with its tables and views.
func (p *Provider) DropDatabase(ctx *gms.Context, name string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	d, found, err := p.srv.store.getDatabase(ctx, kvt, nil, name)
	if err != nil {
		return err
	}
	if !found {
		return gms.ErrDatabaseNotFound.New(name)
	}
	db := &Database{srv: p.srv, desc: d}
	names, err := db.GetTableNames(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := db.dropTable(ctx, n, true); err != nil {
			return err
		}
	}
	return p.srv.store.dropDatabase(ctx, kvt, d)
}

var _ gms.CollatedDatabaseProvider = (*Provider)(nil)
