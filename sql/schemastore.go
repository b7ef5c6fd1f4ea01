package qsql

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/kv"
)

// firstObjectID is the first database or table ID handed out; lower IDs are
// left for system tables.
const firstObjectID = 100

// dbDesc is a database as the SQL layer uses it.
type dbDesc struct {
	id        uint32
	name      string
	collation gms.CollationID
	desc      *catalog.DatabaseDescriptor
}

// schemaCache holds the descriptors one transaction has read, so the
// engine's many Schema() and GetTableInsensitive calls cost one KV read per
// object per transaction. Any DDL in the transaction drops it.
//
// Misses go to the node-wide cache (nodeSchemaCache) when the transaction
// has not changed the schema (shared): the transaction then reads the
// schema generation once and takes whatever the node cached at that
// generation, so an autocommit statement costs one KV read for its schema.
type schemaCache struct {
	dbs    map[string]dbDesc
	tables map[string]*tableInfo
	// shared: the node cache may serve this transaction (false once it
	// changed the schema: it must see its own uncommitted descriptors and
	// must not publish them).
	shared bool
	// genRead, gen: the schema generation, read in this transaction.
	genRead bool
	gen     uint64
}

// schemaCacheOf returns the current transaction's cache (nil without one).
func schemaCacheOf(ctx *gms.Context) *schemaCache {
	tx, ok := ctx.GetTransaction().(*Transaction)
	if !ok || tx == nil || tx.finished {
		return nil
	}
	if tx.schema == nil {
		tx.schema = &schemaCache{dbs: map[string]dbDesc{}, tables: map[string]*tableInfo{}, shared: !tx.schemaChanged}
	}
	return tx.schema
}

// catalogKV adapts a KVTxn to the catalog's KV interface. Every write
// through it bumps the schema generation in the same transaction, so no
// descriptor change can bypass the node cache's validation.
type catalogKV struct{ KVTxn }

func (c catalogKV) Scan(ctx context.Context, start, end []byte, limit int) ([]kv.KeyValue, error) {
	return c.KVTxn.Scan(ctx, start, end, limit, false)
}

func (c catalogKV) Put(ctx context.Context, key, value []byte) error {
	if err := bumpSchemaGeneration(ctx, c.KVTxn); err != nil {
		return err
	}
	return c.KVTxn.Put(ctx, key, value)
}

func (c catalogKV) Delete(ctx context.Context, key []byte) error {
	if err := bumpSchemaGeneration(ctx, c.KVTxn); err != nil {
		return err
	}
	return c.KVTxn.Delete(ctx, key)
}

// schemaStore reads and writes the schema through a transaction.
type schemaStore struct {
	srv *Server
	// nodeCache is shared by every transaction of the node (see
	// nodeSchemaCache for why that is safe); its zero value is ready.
	nodeCache nodeSchemaCache
}

func cat(kvt KVTxn) *catalog.Catalog { return catalog.New(catalogKV{kvt}) }

func newDBDesc(d *catalog.DatabaseDescriptor) (dbDesc, error) {
	out := dbDesc{id: d.ID, name: d.Name, collation: gms.Collation_Default, desc: d}
	if d.Collation != "" {
		c, err := gms.ParseCollation("", d.Collation, false)
		if err != nil {
			return dbDesc{}, fmt.Errorf("qsql: database %s collation: %w", d.Name, err)
		}
		out.collation = c
	}
	return out, nil
}

func (s *schemaStore) getDatabase(ctx context.Context, kvt KVTxn, cache *schemaCache, name string) (dbDesc, bool, error) {
	key := lowerName(name)
	if cache != nil {
		if d, ok := cache.dbs[key]; ok {
			return d, true, nil
		}
	}
	gen, shared, err := s.sharedGeneration(ctx, kvt, cache)
	if err != nil {
		return dbDesc{}, false, err
	}
	if shared {
		c, ok := s.nodeCache.database(gen, key)
		if ok {
			if c.found {
				cache.dbs[key] = c.desc
			}
			return c.desc, c.found, nil
		}
	}
	d, err := cat(kvt).GetDatabase(ctx, name)
	if errors.Is(err, catalog.ErrDatabaseNotFound) {
		if shared {
			s.nodeCache.putDatabase(gen, key, cachedDB{})
		}
		return dbDesc{}, false, nil
	}
	if err != nil {
		return dbDesc{}, false, convertTxnError("read database "+name, err)
	}
	out, err := newDBDesc(d)
	if err != nil {
		return dbDesc{}, false, err
	}
	if cache != nil {
		cache.dbs[key] = out
	}
	if shared {
		s.nodeCache.putDatabase(gen, key, cachedDB{desc: out, found: true})
	}
	return out, true, nil
}

func (s *schemaStore) listDatabases(ctx context.Context, kvt KVTxn) ([]dbDesc, error) {
	ds, err := cat(kvt).ListDatabases(ctx)
	if err != nil {
		return nil, convertTxnError("list databases", err)
	}
	out := make([]dbDesc, 0, len(ds))
	for _, d := range ds {
		dd, err := newDBDesc(d)
		if err != nil {
			return nil, err
		}
		out = append(out, dd)
	}
	return out, nil
}

// nextID hands out a database or table ID from a counter read and written in
// the DDL's own transaction (serializable, hence unique).
func (s *schemaStore) nextID(ctx context.Context, kvt KVTxn, kind byte) (uint32, error) {
	key := idCounterKey(kind)
	v, found, err := kvt.Get(ctx, key)
	if err != nil {
		return 0, convertTxnError("allocate ID", err)
	}
	id := uint32(firstObjectID)
	if found {
		if len(v) != 4 {
			return 0, fmt.Errorf("qsql: corrupt ID counter %x", v)
		}
		id = binary.BigEndian.Uint32(v)
	}
	if id == ^uint32(0) {
		return 0, fmt.Errorf("qsql: ID space of kind %c exhausted", kind)
	}
	if err := kvt.Put(ctx, key, binary.BigEndian.AppendUint32(nil, id+1)); err != nil {
		return 0, convertTxnError("allocate ID", err)
	}
	return id, nil
}

func (s *schemaStore) createDatabase(ctx context.Context, kvt KVTxn, name string, collation gms.CollationID) error {
	if _, found, err := s.getDatabase(ctx, kvt, nil, name); err != nil {
		return err
	} else if found {
		return gms.ErrDatabaseExists.New(name)
	}
	id, err := s.nextID(ctx, kvt, idKindDatabase)
	if err != nil {
		return err
	}
	d := &catalog.DatabaseDescriptor{ID: id, Name: name}
	if collation != gms.Collation_Unspecified && collation != gms.Collation_Default {
		d.Collation = collation.Name()
	}
	return convertCatalogError("create database", name, cat(kvt).CreateDatabase(ctx, d))
}

func (s *schemaStore) dropDatabase(ctx context.Context, kvt KVTxn, d dbDesc) error {
	if err := s.dropObjects(ctx, kvt, d); err != nil {
		return err
	}
	_, err := cat(kvt).DropDatabase(ctx, d.name)
	return convertCatalogError("drop database", d.name, err)
}

func (s *schemaStore) setDatabaseCollation(context.Context, KVTxn, dbDesc, gms.CollationID) error {
	return gms.ErrUnsupportedFeature.New("ALTER DATABASE … COLLATE")
}

func tableCacheKey(dbID uint32, name string) string {
	return fmt.Sprintf("%d/%s", dbID, lowerName(name))
}

func (s *schemaStore) getTable(ctx context.Context, kvt KVTxn, cache *schemaCache, db dbDesc, name string) (*tableInfo, bool, error) {
	key := tableCacheKey(db.id, name)
	if cache != nil {
		if ti, ok := cache.tables[key]; ok {
			return ti, true, nil
		}
	}
	gen, shared, err := s.sharedGeneration(ctx, kvt, cache)
	if err != nil {
		return nil, false, err
	}
	if shared {
		ti, ok := s.nodeCache.table(gen, key)
		if ok {
			if ti == nil {
				return nil, false, nil
			}
			cache.tables[key] = ti
			return ti, true, nil
		}
	}
	d, err := cat(kvt).GetTableByName(ctx, db.id, name)
	if errors.Is(err, catalog.ErrTableNotFound) {
		if shared {
			s.nodeCache.putTable(gen, key, nil)
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, convertTxnError("read table "+name, err)
	}
	ti, err := s.infoFor(ctx, kvt, d)
	if err != nil {
		return nil, false, err
	}
	if cache != nil {
		cache.tables[key] = ti
	}
	if shared {
		s.nodeCache.putTable(gen, key, ti)
	}
	return ti, true, nil
}

func (s *schemaStore) infoFor(ctx context.Context, kvt KVTxn, d *catalog.TableDescriptor) (*tableInfo, error) {
	refs, err := cat(kvt).ReferencingForeignKeys(ctx, d.ID)
	if err != nil {
		return nil, convertTxnError("read foreign keys of "+d.Name, err)
	}
	referenced := make([]gms.ForeignKeyConstraint, 0, len(refs))
	for i := range refs {
		referenced = append(referenced, refs[i].ForeignKey.ToGMS())
	}
	return buildTableInfo(d, referenced)
}

// loadTableInfo reads table id afresh (DDL works on the stored version).
func (s *schemaStore) loadTableInfo(ctx context.Context, kvt KVTxn, id uint32) (*tableInfo, error) {
	d, err := cat(kvt).GetTableByID(ctx, id)
	if err != nil {
		return nil, convertCatalogError("read table", fmt.Sprint(id), err)
	}
	return s.infoFor(ctx, kvt, d)
}

func (s *schemaStore) listTables(ctx context.Context, kvt KVTxn, db dbDesc) ([]string, error) {
	ts, err := cat(kvt).ListTables(ctx, db.id)
	if err != nil {
		return nil, convertTxnError("list tables", err)
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out, nil
}

func (s *schemaStore) createTable(ctx context.Context, kvt KVTxn, db dbDesc, name string, schema gms.PrimaryKeySchema, collation gms.CollationID, comment string) error {
	if _, found, err := s.getTable(ctx, kvt, nil, db, name); err != nil {
		return err
	} else if found {
		return gms.ErrTableAlreadyExists.New(name)
	}
	id, err := s.nextID(ctx, kvt, idKindTable)
	if err != nil {
		return err
	}
	d, err := catalog.NewTableDescriptor(db.desc, id, name, schema, collation, comment)
	if err != nil {
		return fmt.Errorf("qsql: create table %s: %w", name, err)
	}
	return convertCatalogError("create table", name, cat(kvt).CreateTable(ctx, d))
}

func (s *schemaStore) dropTable(ctx context.Context, kvt KVTxn, db dbDesc, info *tableInfo, force bool) error {
	_, err := cat(kvt).DropTable(ctx, info.id, force)
	if errors.Is(err, catalog.ErrReferencedTable) {
		name := ""
		if len(info.referencedFKs) > 0 {
			name = info.referencedFKs[0].Name
		}
		return gms.ErrForeignKeyDropTable.New(info.name, name)
	}
	return convertCatalogError("drop table", info.name, err)
}

// renameTable renames a table and repoints the foreign keys that name it.
func (s *schemaStore) renameTable(ctx context.Context, kvt KVTxn, db dbDesc, oldName, newName string) error {
	info, found, err := s.getTable(ctx, kvt, nil, db, oldName)
	if err != nil {
		return err
	}
	if !found {
		return gms.ErrTableNotFound.New(oldName)
	}
	c := cat(kvt)
	if _, err := c.RenameTable(ctx, info.id, db.desc, newName); err != nil {
		return convertCatalogError("rename table", newName, err)
	}
	refs, err := c.ReferencingForeignKeys(ctx, info.id)
	if err != nil {
		return convertTxnError("rename table", err)
	}
	for _, r := range refs {
		if r.Child.ID == info.id {
			continue
		}
		child, err := c.GetTableByID(ctx, r.Child.ID)
		if err != nil {
			return convertTxnError("rename table", err)
		}
		nd := child.Clone()
		for i := range nd.ForeignKeys {
			if nd.ForeignKeys[i].ParentTableID == info.id {
				nd.ForeignKeys[i].ParentTable = newName
				nd.ForeignKeys[i].ParentDatabase = db.name
			}
		}
		if err := c.UpdateTable(ctx, nd); err != nil {
			return convertCatalogError("rename table", newName, err)
		}
	}
	return nil
}

// updateTable writes nu, a changed clone of old.
func (s *schemaStore) updateTable(ctx context.Context, kvt KVTxn, old, nu *catalog.TableDescriptor) error {
	nu.Version = old.Version
	return convertCatalogError("alter table", nu.Name, cat(kvt).UpdateTable(ctx, nu))
}

// parentTableID resolves a foreign key's parent table (0 when it does not
// exist, as with FOREIGN_KEY_CHECKS=0).
func (s *schemaStore) parentTableID(ctx context.Context, kvt KVTxn, fk gms.ForeignKeyConstraint) (uint32, error) {
	dbName := fk.ParentDatabase
	if dbName == "" {
		dbName = fk.Database
	}
	db, found, err := s.getDatabase(ctx, kvt, nil, dbName)
	if err != nil || !found {
		return 0, err
	}
	d, err := cat(kvt).GetTableByName(ctx, db.id, fk.ParentTable)
	if errors.Is(err, catalog.ErrTableNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, convertTxnError("resolve foreign key parent", err)
	}
	return d.ID, nil
}

// Named schema objects (views, triggers, procedures) are stored as JSON
// under objectKey(kind, database, name).

func getObject[T any](ctx context.Context, kvt KVTxn, tag byte, db dbDesc, name string) (T, bool, error) {
	var out T
	v, found, err := kvt.Get(ctx, objectKey(tag, db.id, name))
	if err != nil {
		return out, false, convertTxnError("read "+name, err)
	}
	if !found {
		return out, false, nil
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return out, false, fmt.Errorf("qsql: corrupt schema object %s: %w", name, err)
	}
	return out, true, nil
}

func putObject(ctx context.Context, kvt KVTxn, tag byte, db dbDesc, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("qsql: encode %s: %w", name, err)
	}
	if err := bumpSchemaGeneration(ctx, kvt); err != nil {
		return err
	}
	return convertTxnError("write "+name, kvt.Put(ctx, objectKey(tag, db.id, name), b))
}

func deleteObject(ctx context.Context, kvt KVTxn, tag byte, db dbDesc, name string) error {
	if err := bumpSchemaGeneration(ctx, kvt); err != nil {
		return err
	}
	return convertTxnError("drop "+name, kvt.Delete(ctx, objectKey(tag, db.id, name)))
}

func listObjects[T any](ctx context.Context, kvt KVTxn, tag byte, db dbDesc) ([]T, error) {
	sp := objectsSpan(tag, db.id)
	kvs, err := kvt.Scan(ctx, sp.Key, sp.EndKey, 0, false)
	if err != nil {
		return nil, convertTxnError("list schema objects", err)
	}
	out := make([]T, 0, len(kvs))
	for _, e := range kvs {
		var v T
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return nil, fmt.Errorf("qsql: corrupt schema object %x: %w", e.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *schemaStore) getView(ctx context.Context, kvt KVTxn, db dbDesc, name string) (gms.ViewDefinition, bool, error) {
	return getObject[gms.ViewDefinition](ctx, kvt, tagView, db, name)
}

// lookupView is getView for the engine's name resolution: through the node
// cache when cache allows it (see getTable).
func (s *schemaStore) lookupView(ctx context.Context, kvt KVTxn, cache *schemaCache, db dbDesc, name string) (gms.ViewDefinition, bool, error) {
	gen, shared, err := s.sharedGeneration(ctx, kvt, cache)
	if err != nil {
		return gms.ViewDefinition{}, false, err
	}
	if !shared {
		return s.getView(ctx, kvt, db, name)
	}
	key := tableCacheKey(db.id, name)
	if v, ok := s.nodeCache.view(gen, key); ok {
		return v.def, v.found, nil
	}
	def, found, err := s.getView(ctx, kvt, db, name)
	if err != nil {
		return def, found, err
	}
	s.nodeCache.putView(gen, key, cachedView{def: def, found: found})
	return def, found, nil
}

// listTriggers lists the triggers of db, through the node cache when cache
// allows it (see getTable).
func (s *schemaStore) listTriggers(ctx context.Context, kvt KVTxn, cache *schemaCache, db dbDesc) ([]gms.TriggerDefinition, error) {
	gen, shared, err := s.sharedGeneration(ctx, kvt, cache)
	if err != nil {
		return nil, err
	}
	if shared {
		if ts, ok := s.nodeCache.triggerList(gen, db.id); ok {
			return ts, nil
		}
	}
	ts, err := listObjects[gms.TriggerDefinition](ctx, kvt, tagTrigger, db)
	if err != nil {
		return nil, err
	}
	if shared {
		s.nodeCache.putTriggerList(gen, db.id, ts)
	}
	return ts, nil
}

func (s *schemaStore) putView(ctx context.Context, kvt KVTxn, db dbDesc, def gms.ViewDefinition) error {
	return putObject(ctx, kvt, tagView, db, def.Name, def)
}

func (s *schemaStore) deleteView(ctx context.Context, kvt KVTxn, db dbDesc, name string) error {
	return deleteObject(ctx, kvt, tagView, db, name)
}

func (s *schemaStore) listViews(ctx context.Context, kvt KVTxn, db dbDesc) ([]gms.ViewDefinition, error) {
	return listObjects[gms.ViewDefinition](ctx, kvt, tagView, db)
}

// dropObjects deletes every view, trigger and procedure of a database.
func (s *schemaStore) dropObjects(ctx context.Context, kvt KVTxn, db dbDesc) error {
	if err := bumpSchemaGeneration(ctx, kvt); err != nil {
		return err
	}
	for _, tag := range []byte{tagView, tagTrigger, tagProcedure} {
		sp := objectsSpan(tag, db.id)
		if err := deleteRange(ctx, kvt, sp.Key, sp.EndKey); err != nil {
			return err
		}
	}
	return nil
}

// deleteSpanKeys deletes every key of the table (rows and index entries).
func deleteSpanKeys(ctx context.Context, kvt KVTxn, info *tableInfo) error {
	start, end := kv.TableSpan(info.id)
	return deleteRange(ctx, kvt, start, end)
}

// deletePrefix deletes every key starting with prefix.
func deletePrefix(ctx context.Context, kvt KVTxn, prefix []byte) error {
	return deleteRange(ctx, kvt, prefix, catalog.KeyPrefixEnd(prefix))
}

func deleteRange(ctx context.Context, kvt KVTxn, start, end []byte) error {
	for {
		kvs, err := kvt.Scan(ctx, start, end, 512, false)
		if err != nil {
			return convertTxnError("delete range", err)
		}
		for _, e := range kvs {
			if err := kvt.Delete(ctx, e.Key); err != nil {
				return convertTxnError("delete range", err)
			}
		}
		if len(kvs) < 512 {
			return nil
		}
		start = append(cloneBytes(kvs[len(kvs)-1].Key), 0)
	}
}
