package qsql

import (
	"fmt"

	gms "github.com/dolthub/go-mysql-server/sql"
)

var (
	_ gms.TriggerDatabase         = (*Database)(nil)
	_ gms.StoredProcedureDatabase = (*Database)(nil)
)

// GetTriggers lists the database's triggers (the engine parses and runs them).
func (d *Database) GetTriggers(ctx *gms.Context) ([]gms.TriggerDefinition, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return d.srv.store.listTriggers(ctx, kvt, schemaCacheOf(ctx), d.desc)
}

// CreateTrigger stores a trigger definition.
func (d *Database) CreateTrigger(ctx *gms.Context, def gms.TriggerDefinition) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	if _, found, err := getObject[gms.TriggerDefinition](ctx, kvt, tagTrigger, d.desc, def.Name); err != nil {
		return err
	} else if found {
		return fmt.Errorf("trigger %q already exists", def.Name)
	}
	return putObject(ctx, kvt, tagTrigger, d.desc, def.Name, def)
}

// DropTrigger removes a trigger.
func (d *Database) DropTrigger(ctx *gms.Context, name string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	if _, found, err := getObject[gms.TriggerDefinition](ctx, kvt, tagTrigger, d.desc, name); err != nil {
		return err
	} else if !found {
		return gms.ErrTriggerDoesNotExist.New(name)
	}
	return deleteObject(ctx, kvt, tagTrigger, d.desc, name)
}

// GetStoredProcedure returns a stored procedure.
func (d *Database) GetStoredProcedure(ctx *gms.Context, name string) (gms.StoredProcedureDetails, bool, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return gms.StoredProcedureDetails{}, false, err
	}
	defer release()
	return getObject[gms.StoredProcedureDetails](ctx, kvt, tagProcedure, d.desc, name)
}

// GetStoredProcedures lists the stored procedures.
func (d *Database) GetStoredProcedures(ctx *gms.Context) ([]gms.StoredProcedureDetails, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return listObjects[gms.StoredProcedureDetails](ctx, kvt, tagProcedure, d.desc)
}

// SaveStoredProcedure stores a stored procedure.
func (d *Database) SaveStoredProcedure(ctx *gms.Context, spd gms.StoredProcedureDetails) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	if _, found, err := getObject[gms.StoredProcedureDetails](ctx, kvt, tagProcedure, d.desc, spd.Name); err != nil {
		return err
	} else if found {
		return gms.ErrStoredProcedureAlreadyExists.New(spd.Name)
	}
	return putObject(ctx, kvt, tagProcedure, d.desc, spd.Name, spd)
}

// DropStoredProcedure removes a stored procedure.
func (d *Database) DropStoredProcedure(ctx *gms.Context, name string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	if _, found, err := getObject[gms.StoredProcedureDetails](ctx, kvt, tagProcedure, d.desc, name); err != nil {
		return err
	} else if !found {
		return gms.ErrStoredProcedureDoesNotExist.New(name)
	}
	return deleteObject(ctx, kvt, tagProcedure, d.desc, name)
}
