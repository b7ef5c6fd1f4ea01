package catalog

import (
	"context"
	"fmt"
	"sync"
)

// TableCache keeps resolved tables (parsed types, codecs) keyed by the
// exact stored descriptor bytes, so each descriptor version is unmarshalled
// and resolved once per node. Keying by content rather than by (ID,
// Version) stays correct when a DDL transaction that bumped a version
// aborts and another one commits a different descriptor with the same
// version number. Safe for concurrent use.
type TableCache struct {
	mu      sync.Mutex
	tables  map[string]*Table
	maxSize int
}

// NewTableCache returns a cache holding at most maxSize resolved tables
// (when full it is emptied: descriptors change rarely, so a simple bound is
// enough to keep dropped and old versions from accumulating).
func NewTableCache(maxSize int) *TableCache {
	return &TableCache{tables: map[string]*Table{}, maxSize: max(maxSize, 1)}
}

// Resolve returns the resolved table of the stored descriptor raw.
func (c *TableCache) Resolve(raw []byte) (*Table, error) {
	c.mu.Lock()
	t, ok := c.tables[string(raw)]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	d, err := UnmarshalTableDescriptor(raw)
	if err != nil {
		return nil, err
	}
	if t, err = d.Resolve(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.tables) >= c.maxSize {
		clear(c.tables)
	}
	c.tables[string(raw)] = t
	c.mu.Unlock()
	return t, nil
}

// ResolveTableByID reads table id in this transaction and resolves it
// through cache. The returned Table is shared: treat it (and its Desc) as
// read-only; Clone the descriptor to change it.
func (c *Catalog) ResolveTableByID(ctx context.Context, cache *TableCache, id uint32) (*Table, error) {
	v, ok, err := c.txn.Get(ctx, TableDescriptorKey(id))
	if err != nil {
		return nil, fmt.Errorf("catalog: get table %d: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: ID %d", ErrTableNotFound, id)
	}
	return cache.Resolve(v)
}

// ResolveTableByName reads table name of database dbID and resolves it
// through cache (see ResolveTableByID).
func (c *Catalog) ResolveTableByName(ctx context.Context, cache *TableCache, dbID uint32, name string) (*Table, error) {
	v, ok, err := c.txn.Get(ctx, TableNameKey(dbID, name))
	if err != nil {
		return nil, fmt.Errorf("catalog: get table %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTableNotFound, name)
	}
	id, err := decodeID(v)
	if err != nil {
		return nil, err
	}
	return c.ResolveTableByID(ctx, cache, id)
}
