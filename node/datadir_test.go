package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDirLockIdentityAndForeignDirs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n1")
	d, id, err := openDataDir(path, "c1")
	if err != nil {
		t.Fatalf("open new dir: %v", err)
	}
	if id != nil {
		t.Fatalf("new dir has identity %+v", id)
	}
	if _, _, err := openDataDir(path, "c1"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a locked dir: %v", err)
	}
	if err := d.writeIdentity(Identity{Cluster: "c1", NodeID: 7}); err != nil {
		t.Fatal(err)
	}
	d.close()

	d, id, err = openDataDir(path, "c1")
	if err != nil || id == nil || id.NodeID != 7 {
		t.Fatalf("reopen: id=%+v err=%v", id, err)
	}
	d.close()
	if _, _, err := openDataDir(path, "other"); err == nil || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Fatalf("open with another cluster name: %v", err)
	}

	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "mysql.ibd"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openDataDir(foreign, "c1"); err == nil || !strings.Contains(err.Error(), "foreign") {
		t.Fatalf("foreign dir accepted: %v", err)
	}
	if _, _, err := openDataDir("", "c1"); err == nil {
		t.Fatal("empty path accepted")
	}
}
