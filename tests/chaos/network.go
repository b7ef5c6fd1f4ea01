package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// network places the cluster's processes on addresses and, where it can,
// cuts links between nodes.
type network interface {
	// Mechanism says in words how partitions are made (for the report).
	Mechanism() string
	// Host is the IP address of node i (0-based), or of etcd for i < 0.
	Host(i int) string
	// ClientHost is where the test process reaches the cluster from.
	Command(ctx context.Context, i int, bin string, args ...string) *exec.Cmd
	// Cut drops every packet that node to receives from node from.
	Cut(from, to int) error
	// HealAll removes every cut.
	HealAll() error
	// SQLHost is the address node i's MySQL server listens on. The
	// engine admits root only from 127.0.0.1/::1 (root@localhost), so in
	// namespaces SQL listens on the namespace's own loopback.
	SQLHost(i int) string
	// DialSQL connects to node i's MySQL server from where its SQLHost is
	// reachable as localhost.
	DialSQL(ctx context.Context, i int, addr string) (net.Conn, error)
	// FixedPorts says whether every process may use the same fixed ports
	// (one address per process) or must pick free ones.
	FixedPorts() bool
	Close() error
}

const etcdIndex = -1

// loopbackNetwork: every node on its own 127.0.0.x (Linux routes 127/8 to
// lo); no partitions (the kernel picks 127.0.0.1 as the source of every
// loopback connection, so address-based filters cannot tell nodes apart).
type loopbackNetwork struct{}

func (loopbackNetwork) Mechanism() string {
	return "loopback addresses 127.0.0.x, no partitions (not root or no ip netns)"
}

func (loopbackNetwork) Host(i int) string {
	if i == etcdIndex {
		return "127.0.0.250"
	}
	return fmt.Sprintf("127.0.0.%d", i+2)
}

func (loopbackNetwork) Command(ctx context.Context, _ int, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, bin, args...)
}

func (l loopbackNetwork) SQLHost(i int) string { return l.Host(i) }

func (loopbackNetwork) DialSQL(ctx context.Context, _ int, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (loopbackNetwork) Cut(int, int) error { return ErrPartitionUnsupported }
func (loopbackNetwork) HealAll() error     { return nil }
func (loopbackNetwork) FixedPorts() bool   { return false }
func (loopbackNetwork) Close() error       { return nil }

// netnsNetwork puts every node and etcd in its own network namespace, each
// with a veth pair whose outer end joins a bridge in the root namespace;
// the test process reaches them through the bridge's address. A cut from A
// to B is a policy-routing rule in B's namespace, "from A blackhole",
// placed before the local table: B's kernel silently drops what A sends (a
// real packet loss: A sees timeouts, not errors). Made with iproute2 only.
type netnsNetwork struct {
	prefix string // namespace and interface prefix, unique per process
	subnet string // "10.a.b."
	nodes  int

	mu   sync.Mutex
	cuts map[[2]int]bool
}

// netnsAvailable reports whether this process may create namespaces.
func netnsAvailable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false
	}
	return true
}

func ipCmd(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chaos: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// newNetnsNetwork builds namespaces for nodes nodes plus etcd. The names
// carry this process's ID so a later run can remove what a crashed run
// left behind (removeStaleNamespaces).
func newNetnsNetwork(nodes int) (*netnsNetwork, error) {
	removeStaleNamespaces()
	pid := os.Getpid()
	// The random part keeps successive clusters of one process apart: the
	// kernel tears a deleted namespace down asynchronously.
	n := &netnsNetwork{prefix: fmt.Sprintf("qc%xr%02x", pid, rand.IntN(256)), nodes: nodes, cuts: map[[2]int]bool{}}
	// A /24 in 10.200-249.x that no interface here uses yet.
	used := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ip := ipn.IP.To4()
				used[fmt.Sprintf("%d.%d.%d.", ip[0], ip[1], ip[2])] = true
			}
		}
	}
	for k := 0; k < 50*256; k++ {
		s := fmt.Sprintf("10.%d.%d.", 200+(pid+k+int(n.prefix[len(n.prefix)-1]))/256%50, (pid+k)%256)
		if !used[s] {
			n.subnet = s
			break
		}
	}
	if err := n.setup(); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func (n *netnsNetwork) bridge() string { return n.prefix + "b" }

func (n *netnsNetwork) ns(i int) string {
	if i == etcdIndex {
		return fmt.Sprintf("qdbchaos-%s-etcd", n.prefix)
	}
	return fmt.Sprintf("qdbchaos-%s-n%d", n.prefix, i+1)
}

func (n *netnsNetwork) veth(i int) string {
	if i == etcdIndex {
		return n.prefix + "ve"
	}
	return fmt.Sprintf("%sv%d", n.prefix, i+1)
}

func (n *netnsNetwork) setup() error {
	if err := ipCmd("link", "add", n.bridge(), "type", "bridge"); err != nil {
		return err
	}
	if err := ipCmd("addr", "add", n.subnet+"1/24", "dev", n.bridge()); err != nil {
		return err
	}
	if err := ipCmd("link", "set", n.bridge(), "up"); err != nil {
		return err
	}
	for i := etcdIndex; i < n.nodes; i++ {
		ns := n.ns(i)
		steps := [][]string{
			{"netns", "add", ns},
			{"link", "add", n.veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"link", "set", n.veth(i), "master", n.bridge(), "up"},
			{"-n", ns, "addr", "add", n.Host(i) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			// Move the local table behind the cut rules (preference 10).
			{"-n", ns, "rule", "add", "pref", "100", "lookup", "local"},
			{"-n", ns, "rule", "del", "pref", "0"},
		}
		for _, s := range steps {
			if err := ipCmd(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *netnsNetwork) Mechanism() string {
	return "one network namespace per node and for etcd (veth pairs on a bridge); partitions are policy-routing blackhole rules in the receiver's namespace (silent packet drops; iproute2 only, no iptables needed)"
}

func (n *netnsNetwork) Host(i int) string {
	if i == etcdIndex {
		return n.subnet + "250"
	}
	return fmt.Sprintf("%s%d", n.subnet, i+2)
}

func (n *netnsNetwork) Command(ctx context.Context, i int, bin string, args ...string) *exec.Cmd {
	// ip netns exec execs the program in place: the child's PID is the
	// program's, so signals reach it directly.
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns(i), bin}, args...)...)
}

func (n *netnsNetwork) SQLHost(int) string { return "127.0.0.1" }

// DialSQL opens the socket inside node i's namespace: a goroutine locks
// its OS thread, moves it into the namespace and dials there. The thread
// is never unlocked, so it ends with the goroutine and no other goroutine
// ever runs in the wrong namespace.
func (n *netnsNetwork) DialSQL(ctx context.Context, i int, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.ns(i))
		if err != nil {
			ch <- result{err: fmt.Errorf("chaos: open namespace: %w", err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("chaos: enter namespace %s: %w", n.ns(i), err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (n *netnsNetwork) Cut(from, to int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cuts[[2]int{from, to}] {
		return nil
	}
	if err := ipCmd("-n", n.ns(to), "rule", "add", "pref", "10", "from", n.Host(from), "blackhole"); err != nil {
		return err
	}
	n.cuts[[2]int{from, to}] = true
	return nil
}

func (n *netnsNetwork) HealAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var first error
	for c := range n.cuts {
		if err := ipCmd("-n", n.ns(c[1]), "rule", "del", "pref", "10", "from", n.Host(c[0]), "blackhole"); err != nil && first == nil {
			first = err
		}
		delete(n.cuts, c)
	}
	return first
}

func (n *netnsNetwork) FixedPorts() bool { return true }

// Close deletes the namespaces (which removes their veth pairs) and the
// bridge. Processes still inside must have been stopped.
func (n *netnsNetwork) Close() error {
	for i := etcdIndex; i < n.nodes; i++ {
		// Deleting the outer end removes the pair at once; the namespace
		// itself is torn down by the kernel later.
		_ = ipCmd("link", "del", n.veth(i))
		_ = ipCmd("netns", "del", n.ns(i))
	}
	_ = ipCmd("link", "del", n.bridge())
	return nil
}

// removeStaleNamespaces deletes namespaces and bridges of earlier runs
// whose process is gone (a run killed before its cleanup), after killing
// the database processes still inside them.
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "qdbchaos-qc")
		if !ok {
			continue
		}
		prefix, _, _ := strings.Cut(rest, "-")
		hexPID, _, _ := strings.Cut(prefix, "r")
		var pid int
		if _, err := fmt.Sscanf(hexPID, "%x", &pid); err != nil || processAlive(pid) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				var stale int
				if _, err := fmt.Sscanf(p, "%d", &stale); err == nil {
					if proc, err := os.FindProcess(stale); err == nil {
						_ = proc.Kill()
					}
				}
			}
		}
		_ = ipCmd("netns", "del", name)
		_ = ipCmd("link", "del", "qc"+prefix+"b")
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
