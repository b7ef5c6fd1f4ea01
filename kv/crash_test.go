package kv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildDirEnv switches the test binary into the crash writer: it writes
// to the pebble directory named by the variable until it is killed.
const crashChildDirEnv = "QUORUMDB_KV_CRASH_CHILD_DIR"

const (
	crashSyncedBatches = 25
	crashKeysPerBatch  = 64
	crashValueSize     = 600 // 64 x 600 B: every batch spans WAL blocks (32 KiB)
)

func crashKey(batch, i int) []byte {
	if i == crashKeysPerBatch {
		return fmt.Appendf(nil, "c/%06d/marker", batch)
	}
	return fmt.Appendf(nil, "c/%06d/%03d", batch, i)
}

func crashValue(batch, i int) []byte {
	v := bytes.Repeat([]byte{byte('a' + (batch+i)%26)}, crashValueSize)
	return append(fmt.Appendf(nil, "%d/%d:", batch, i), v...)
}

// crashBatch commits transaction number batch: all its keys and the marker
// in one 1PC command, in one pebble batch.
func crashBatch(e *Engine, desc *RangeDescriptor, batch int, sync bool) error {
	muts := make([]Mutation, 0, crashKeysPerBatch+1)
	for i := 0; i <= crashKeysPerBatch; i++ {
		muts = append(muts, Mutation{Op: OpPut, Key: crashKey(batch, i), Value: crashValue(batch, i)})
	}
	b := e.NewBatch()
	defer func() { _ = b.Close() }()
	start := MakeTimestamp(1000+uint64(batch), 0)
	if _, err := Evaluate(b, desc, &Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: muts, StartTS: start, CommitTS: start + 1}}); err != nil {
		return err
	}
	return e.Commit(b, sync)
}

// runCrashChild writes synced batches, announcing each after its commit
// returned, then unsynced ones until killed (or a safety deadline).
func runCrashChild(dir string) {
	e, err := Open(dir, EngineOptions{CacheSize: 8 << 20})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	desc := &RangeDescriptor{RangeID: 1, StartKey: KeyMin, EndKey: KeyMax}
	deadline := time.Now().Add(60 * time.Second)
	for batch := 0; time.Now().Before(deadline); batch++ {
		synced := batch < crashSyncedBatches
		if err := crashBatch(e, desc, batch, synced); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		if synced {
			fmt.Printf("synced %d\n", batch)
		} else {
			fmt.Printf("unsynced %d\n", batch)
		}
	}
	os.Exit(3) // never killed: the parent gave up
}

// TestCrashRecovery kills a writer process with SIGKILL in the middle of
// unsynced writes, reopens its pebble directory and checks that every synced
// transaction is there and that every transaction is all or nothing.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildDirEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = cmd.Process.Kill() // harmless when it is already dead
		_ = cmd.Wait()
	})
	lastSynced, unsynced := -1, 0
	timeout := time.After(45 * time.Second)
	for unsynced < 40 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited early: %v", cmd.Wait())
			}
			f := strings.Fields(line)
			if len(f) != 2 || f[0] == "error" {
				t.Fatalf("child: %q", line)
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("child: %q", line)
			}
			if f[0] == "synced" {
				lastSynced = n
			} else {
				unsynced++
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatal("child did not make progress within 45s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for the exit (and the release of pebble's directory lock); the
	// pipe reader is still running, so not cmd.Wait.
	if _, err := cmd.Process.Wait(); err != nil {
		t.Fatal(err)
	}
	if lastSynced != crashSyncedBatches-1 {
		t.Fatalf("child reported %d synced batches", lastSynced+1)
	}

	e, err := Open(dir, EngineOptions{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	desc := &RangeDescriptor{RangeID: 1, StartKey: KeyMin, EndKey: KeyMax}
	resp, err := EvaluateReadOnly(e.DB(), desc, &Request{Scan: &ScanRequest{Start: []byte("c/"), End: []byte("c0"), ReadTS: MakeTimestamp(1<<40, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	perBatch := map[int]int{}
	for _, kv := range resp.Scan.Rows {
		var batch int
		if _, err := fmt.Sscanf(string(kv.Key), "c/%06d/", &batch); err != nil {
			t.Fatalf("unexpected key %q", kv.Key)
		}
		perBatch[batch]++
	}
	for batch := 0; batch < crashSyncedBatches; batch++ {
		if perBatch[batch] == 0 {
			t.Errorf("synced batch %d lost", batch)
		}
	}
	maxBatch := -1
	for batch, n := range perBatch {
		if n != crashKeysPerBatch+1 {
			t.Errorf("batch %d half applied: %d of %d keys", batch, n, crashKeysPerBatch+1)
		}
		maxBatch = max(maxBatch, batch)
	}
	for batch := 0; batch <= maxBatch; batch++ {
		if perBatch[batch] == 0 {
			t.Errorf("batch %d missing below surviving batch %d: WAL order broken", batch, maxBatch)
		}
	}
	for _, kv := range resp.Scan.Rows {
		var batch, i int
		if _, err := fmt.Sscanf(string(kv.Key), "c/%06d/%03d", &batch, &i); err != nil {
			i = crashKeysPerBatch // the marker
		}
		if !bytes.Equal(kv.Value, crashValue(batch, i)) {
			t.Errorf("key %q has a torn value", kv.Key)
		}
	}
	t.Logf("%d synced batches, %d reported unsynced, %d batches survived", crashSyncedBatches, unsynced, len(perBatch))
}
