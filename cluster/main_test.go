package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// testEtcd is the one embedded etcd member shared by this package's tests;
// each test works under its own cluster name.
var testEtcd *EmbeddedEtcd

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cluster-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	testEtcd, err = StartEmbeddedEtcd(ctx, EmbeddedEtcdConfig{
		Dir:       dir,
		Name:      "test",
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testEtcd.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testClusterName derives a unique cluster name from the test's name.
func testClusterName(t testing.TB) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

// connectTest connects to the shared etcd under the test's cluster name
// with a 2 s lease TTL, and wipes the cluster's keys when the test ends so a
// -count=N run starts from scratch.
func connectTest(t testing.TB, opts ...Option) *Client {
	t.Helper()
	c := connectEndpoints(t, testEtcd.Endpoints(), opts...)
	t.Cleanup(func() {
		if c.etcd.Ctx().Err() != nil {
			return // closed by the test
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.etcd.Delete(ctx, c.prefix, clientv3.WithPrefix())
	})
	return c
}

// connectEndpoints connects to any etcd under the test's cluster name.
func connectEndpoints(t testing.TB, endpoints []string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, endpoints, testClusterName(t), append([]Option{WithLeaseTTL(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpProxy forwards connections to a target until cut, which closes every
// connection and refuses new ones: a network partition between one client
// and etcd.
type tcpProxy struct {
	ln     net.Listener
	target string
	cutted atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		if p.cutted.Load() {
			p.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	if p.cutted.Swap(true) {
		p.mu.Unlock()
		return
	}
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// etcdHostPort strips the scheme from an endpoint URL.
func etcdHostPort(endpoint string) string {
	return strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
}

func withPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

func grpcInsecure() grpc.DialOption {
	return grpc.WithTransportCredentials(insecure.NewCredentials())
}
