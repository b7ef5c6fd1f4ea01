package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestEmbeddedEtcdPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	_, err = StartEmbeddedEtcd(testCtx(t, 30*time.Second), EmbeddedEtcdConfig{
		Dir:       t.TempDir(),
		ClientURL: "http://" + ln.Addr().String(),
		PeerURL:   "http://127.0.0.1:0",
	})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a used port: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing on a used port took %s", d)
	}
}

func TestEmbeddedEtcdBadConfig(t *testing.T) {
	for _, cfg := range []EmbeddedEtcdConfig{
		{},
		{Dir: t.TempDir(), ClientURL: "127.0.0.1:2379"},
		{Dir: t.TempDir(), ClientURL: "http://127.0.0.1"},
		{Dir: t.TempDir(), InitialClusterState: "sideways"},
	} {
		if _, err := StartEmbeddedEtcd(testCtx(t, 10*time.Second), cfg); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("config %+v: got %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

func TestEmbeddedEtcdStaticThreeMemberCluster(t *testing.T) {
	t.Parallel()
	names := []string{"m1", "m2", "m3"}
	var peers []string
	clientURLs := map[string]string{}
	peerURLs := map[string]string{}
	for _, n := range names {
		peerURLs[n] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		clientURLs[n] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		peers = append(peers, n+"="+peerURLs[n])
	}
	initial := strings.Join(peers, ",")
	members := make([]*EmbeddedEtcd, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			members[i], errs[i] = StartEmbeddedEtcd(testCtx(t, 60*time.Second), EmbeddedEtcdConfig{
				Dir: t.TempDir(), Name: n, ClientURL: clientURLs[n], PeerURL: peerURLs[n],
				InitialCluster: initial, InitialClusterToken: "three-member-test",
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %s: %v", names[i], err)
		}
		// A cleanup, so it runs after the clients below are closed.
		t.Cleanup(members[i].Close)
	}
	var all []string
	for _, m := range members {
		all = append(all, m.Endpoints()...)
	}
	c1 := connectEndpoints(t, members[0].Endpoints())
	c3 := connectEndpoints(t, members[2].Endpoints())
	ctx := testCtx(t, 20*time.Second)
	if _, err := c1.Etcd().Put(ctx, c1.key("probe"), "through m1"); err != nil {
		t.Fatal(err)
	}
	resp, err := c3.Etcd().Get(ctx, c3.key("probe"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "through m1" {
		t.Fatalf("member m3 read %v", resp.Kvs)
	}
	ms, err := c1.Etcd().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Members) != 3 {
		t.Fatalf("member list has %d members, want 3 (%v)", len(ms.Members), all)
	}
	// With one member down the other two keep a quorum.
	members[1].Close()
	if _, err := c3.Etcd().Put(ctx, c3.key("probe"), "after m2 stopped"); err != nil {
		t.Fatalf("write with two of three members: %v", err)
	}
}

func TestEmbeddedEtcdNotReadyWithoutQuorum(t *testing.T) {
	t.Parallel()
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	other1 := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	other2 := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	_, err := StartEmbeddedEtcd(testCtx(t, 30*time.Second), EmbeddedEtcdConfig{
		Dir: t.TempDir(), Name: "lonely", ClientURL: "http://127.0.0.1:0", PeerURL: peer,
		InitialCluster: "lonely=" + peer + ",a=" + other1 + ",b=" + other2,
		ReadyTimeout:   time.Second,
	})
	if !errors.Is(err, ErrEtcdUnavailable) || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("lone member of a 3-member cluster: %v", err)
	}
}

func TestConnectUnreachable(t *testing.T) {
	port := freePort(t)
	start := time.Now()
	_, err := Connect(context.Background(), []string{fmt.Sprintf("http://127.0.0.1:%d", port)}, "x", WithDialTimeout(500*time.Millisecond))
	if !errors.Is(err, ErrEtcdUnavailable) {
		t.Fatalf("connect to a closed port: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("connect failure took %s", d)
	}
	if _, err := Connect(context.Background(), testEtcd.Endpoints(), "a/b"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("cluster name with '/': %v", err)
	}
	if _, err := Connect(context.Background(), nil, "x"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no endpoints: %v", err)
	}
}
