package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestRecoversAfterEtcdOutage stops a dedicated etcd under a node
// registration, a TSO server and a TSO client, then restarts it on the same
// data directory and port: timestamps fail with a clear error (not a hang)
// while etcd is down, and everything recovers without help once it is back.
func TestRecoversAfterEtcdOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	start := func() *EmbeddedEtcd {
		e, err := StartEmbeddedEtcd(testCtx(t, 30*time.Second), EmbeddedEtcdConfig{
			Dir: dir, Name: "outage", ClientURL: clientURL, PeerURL: "http://127.0.0.1:0",
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := start()
	// Registered first, so it runs after the clients' cleanups: closing
	// etcd under open watches waits for etcd's request timeout.
	t.Cleanup(func() { e.Close() })

	c := connectEndpoints(t, e.Endpoints())
	reg, err := c.Register(testCtx(t, 10*time.Second), NodeInfo{RPCAddr: "127.0.0.1:7401"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Deregister(testCtx(t, 5*time.Second)) }()
	n := startTSONode(t, connectEndpoints(t, e.Endpoints()), nil)
	waitFor(t, 20*time.Second, "TSO leader", n.srv.IsLeader)
	tc := NewTSOClient(connectEndpoints(t, e.Endpoints()), TSOClientConfig{MaxWait: 2 * time.Second})
	defer tc.Close()
	before, err := tc.GetTimestamp(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	// etcd stops serving at once. Its Close then waits up to etcd's request
	// timeout (7 s) for our open watch streams; the outage checks run
	// meanwhile.
	phase := time.Now()
	e.etcd.Server.HardStop()
	closed := make(chan struct{})
	go func() {
		e.Close()
		close(closed)
	}()
	// The leader stops within its lease TTL; calls then fail in bounded time.
	waitFor(t, 15*time.Second, "TSO leader stepping down without etcd", func() bool { return !n.srv.IsLeader() })
	t.Logf("leader stepped down after %s", time.Since(phase).Round(time.Millisecond))
	callStart := time.Now()
	_, err = tc.GetTimestamp(testCtx(t, 30*time.Second))
	var unavailable *TSOUnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("timestamp with etcd down: %v", err)
	}
	if d := time.Since(callStart); d > 10*time.Second {
		t.Fatalf("failing took %s", d)
	}
	t.Logf("a call failed after %s: %v", time.Since(callStart).Round(time.Millisecond), err)
	<-closed

	phase = time.Now()
	e = start()
	t.Logf("etcd restarted in %s", time.Since(phase).Round(time.Millisecond))
	phase = time.Now()
	var after uint64
	waitFor(t, 30*time.Second, "timestamps after etcd returned", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		ts, err := tc.GetTimestamp(ctx)
		after = ts
		return err == nil
	})
	t.Logf("timestamps again after %s", time.Since(phase).Round(time.Millisecond))
	if after <= before {
		t.Fatalf("timestamp after the outage %d not above %d", after, before)
	}
	waitFor(t, 30*time.Second, "node live again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, live, err := c.GetNode(ctx, reg.ID())
		return err == nil && live && reg.Live()
	})
}
