package kv

import "github.com/cockroachdb/pebble/v2/vfs"

func newMemFS() vfs.FS { return vfs.NewMem() }
