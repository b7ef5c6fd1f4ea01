package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// identityFile records which cluster and node a data directory belongs to.
// It is written once, when the node first joins, and checked on every start:
// a directory of another cluster, or one that holds files but no identity,
// is refused rather than mixed into this cluster's data.
const identityFile = "QUORUMDB_NODE"

// storeSubdir holds the node's pebble database.
const storeSubdir = "store"

// Identity is the content of a data directory's identity file.
type Identity struct {
	Cluster string `json:"cluster"`
	NodeID  uint64 `json:"node_id"`
}

// dataDir is an opened, locked data directory.
type dataDir struct {
	path string
	lock *os.File
}

// openDataDir creates path if needed, takes an exclusive lock on it (a second
// process on the same directory gets a clear error) and returns the identity
// found there (nil for a new directory).
func openDataDir(path, cluster string) (*dataDir, *Identity, error) {
	if path == "" {
		return nil, nil, errors.New("node: --data-dir is required")
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, nil, fmt.Errorf("node: create data directory %s: %w", path, err)
	}
	lf, err := os.OpenFile(filepath.Join(path, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("node: open lock file in %s: %w", path, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, nil, fmt.Errorf("node: data directory %s is in use by another quorumdb process", path)
	}
	d := &dataDir{path: path, lock: lf}
	id, err := d.readIdentity()
	if err != nil {
		d.close()
		return nil, nil, err
	}
	if id == nil {
		entries, err := os.ReadDir(path)
		if err != nil {
			d.close()
			return nil, nil, fmt.Errorf("node: read data directory %s: %w", path, err)
		}
		for _, e := range entries {
			if e.Name() != "LOCK" {
				d.close()
				return nil, nil, fmt.Errorf("node: data directory %s is not empty and holds no QuorumDB identity (found %q): refusing to use a foreign directory", path, e.Name())
			}
		}
	} else if id.Cluster != cluster {
		d.close()
		return nil, nil, fmt.Errorf("node: data directory %s belongs to cluster %q, not %q", path, id.Cluster, cluster)
	}
	return d, id, nil
}

func (d *dataDir) storePath() string { return filepath.Join(d.path, storeSubdir) }

func (d *dataDir) readIdentity() (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(d.path, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("node: identity file %s is corrupt: %w", filepath.Join(d.path, identityFile), err)
	}
	return &id, nil
}

// writeIdentity persists id durably (write to a temp file, fsync, rename).
func (d *dataDir) writeIdentity(id Identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("node: encode identity: %w", err)
	}
	tmp := filepath.Join(d.path, identityFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("node: write identity: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("node: write identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("node: sync identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("node: write identity: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.path, identityFile)); err != nil {
		return fmt.Errorf("node: install identity: %w", err)
	}
	dir, err := os.Open(d.path)
	if err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

func (d *dataDir) close() {
	if d.lock != nil {
		_ = syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
		d.lock.Close()
		d.lock = nil
	}
}
