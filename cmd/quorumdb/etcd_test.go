package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
)

// lockedBuffer is an output buffer the command writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingLine = regexp.MustCompile(`serving clients at (\S+)`)

// etcdRun is one `quorumdb etcd` command running in-process.
type etcdRun struct {
	out    *lockedBuffer
	errs   *lockedBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when the command returned
	err    error         // what it returned, once done is closed
}

func startEtcdCommand(t *testing.T, args ...string) *etcdRun {
	t.Helper()
	root := newRootCommand()
	r := &etcdRun{out: &lockedBuffer{}, errs: &lockedBuffer{}, done: make(chan struct{})}
	root.SetOut(r.out)
	root.SetErr(r.errs)
	root.SetArgs(append([]string{"etcd"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.err = root.ExecuteContext(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("etcd command did not stop within 30s")
		}
	})
	return r
}

// endpoint waits for the command to print its client endpoint.
func (r *etcdRun) endpoint(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingLine.FindStringSubmatch(r.out.String()); m != nil {
			return m[1]
		}
		select {
		case <-r.done:
			t.Fatalf("etcd command ended: %v (stderr %q)", r.err, r.errs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("etcd command printed no endpoint within 60s: %q", r.out.String())
	return ""
}

func freeLocalPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestEtcdCommandServesUntilCanceled(t *testing.T) {
	r := startEtcdCommand(t, "--data-dir", t.TempDir(), "--name", "solo",
		"--client-url", "http://127.0.0.1:0", "--peer-url", "http://127.0.0.1:0")
	endpoint := r.endpoint(t)
	if strings.HasSuffix(endpoint, ":0") {
		t.Fatalf("printed endpoint %q keeps port 0", endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cluster.Connect(ctx, []string{endpoint}, "cmdtest")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Etcd().Put(ctx, c.Prefix()+"k", "v"); err != nil {
		t.Fatal(err)
	}
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("etcd command after cancel: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("etcd command did not stop")
	}
	if !strings.Contains(r.out.String(), "stopping") {
		t.Fatalf("output %q", r.out.String())
	}
}

func TestEtcdCommandPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := startEtcdCommand(t, "--data-dir", t.TempDir(),
		"--client-url", "http://"+ln.Addr().String(), "--peer-url", "http://127.0.0.1:0")
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "address already in use") {
			t.Fatalf("port in use: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("etcd command on a used port did not fail")
	}
}

func TestEtcdCommandNeedsDataDir(t *testing.T) {
	root := newRootCommand()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"etcd"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("without --data-dir: %v", err)
	}
}

func TestEtcdCommandStaticThreeMemberCluster(t *testing.T) {
	names := []string{"e1", "e2", "e3"}
	var initial []string
	clientURLs := map[string]string{}
	peerURLs := map[string]string{}
	for _, n := range names {
		clientURLs[n] = fmt.Sprintf("http://127.0.0.1:%d", freeLocalPort(t))
		peerURLs[n] = fmt.Sprintf("http://127.0.0.1:%d", freeLocalPort(t))
		initial = append(initial, n+"="+peerURLs[n])
	}
	var runs []*etcdRun
	for _, n := range names {
		runs = append(runs, startEtcdCommand(t, "--data-dir", t.TempDir(), "--name", n,
			"--client-url", clientURLs[n], "--peer-url", peerURLs[n],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "cmd-three"))
	}
	var endpoints []string
	for _, r := range runs {
		endpoints = append(endpoints, r.endpoint(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := cluster.Connect(ctx, endpoints[:1], "cmdthree")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	last, err := cluster.Connect(ctx, endpoints[2:], "cmdthree")
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if _, err := first.Etcd().Put(ctx, first.Prefix()+"k", "from e1"); err != nil {
		t.Fatal(err)
	}
	resp, err := last.Etcd().Get(ctx, last.Prefix()+"k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "from e1" {
		t.Fatalf("read through e3: %v, %v", resp, err)
	}
	members, err := last.Etcd().MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list: %v, %v", members, err)
	}
}
