package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Defaults for EmbeddedEtcdConfig.
const (
	DefaultEtcdClientURL    = "http://127.0.0.1:2379"
	DefaultEtcdPeerURL      = "http://127.0.0.1:2380"
	DefaultEtcdReadyTimeout = time.Minute
	defaultEtcdName         = "default"
	defaultClusterToken     = "quorumdb"
)

// EmbeddedEtcdConfig describes one etcd member run inside this process.
type EmbeddedEtcdConfig struct {
	// Dir is the member's data directory (created if missing). Required.
	Dir string
	// Name is the member name; "default" when empty.
	Name string
	// ClientURL is where clients connect (DefaultEtcdClientURL when empty).
	// Port 0 picks a free port; Endpoints reports the real one.
	ClientURL string
	// PeerURL is where the other members connect (DefaultEtcdPeerURL when
	// empty). Port 0 works for a single-member cluster only.
	PeerURL string
	// InitialCluster is the static member list "name1=peerURL1,name2=…";
	// empty means a single-member cluster of this member alone.
	InitialCluster string
	// InitialClusterState is "new" (default) or "existing" (joining a running
	// cluster after `member add`).
	InitialClusterState string
	// InitialClusterToken distinguishes clusters bootstrapped with the same
	// member list; "quorumdb" when empty.
	InitialClusterToken string
	// ReadyTimeout bounds the wait for the member to join a quorum and serve
	// (DefaultEtcdReadyTimeout when zero). A member of a static multi-member
	// cluster is ready only once a majority of the members runs.
	ReadyTimeout time.Duration
	// Logger receives etcd's own log; nil keeps etcd silent.
	Logger *slog.Logger
}

// EmbeddedEtcd is a running in-process etcd member.
type EmbeddedEtcd struct {
	etcd      *embed.Etcd
	endpoints []string
	name      string
	closeOnce sync.Once
}

// StartEmbeddedEtcd starts an etcd member and waits (bounded) until it serves
// clients. A port already in use fails at once with the listener's error.
func StartEmbeddedEtcd(ctx context.Context, cfg EmbeddedEtcdConfig) (*EmbeddedEtcd, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("cluster: embedded etcd: empty data dir: %w", ErrInvalidArgument)
	}
	if cfg.Name == "" {
		cfg.Name = defaultEtcdName
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultEtcdClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultEtcdPeerURL
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultEtcdReadyTimeout
	}
	if cfg.InitialClusterToken == "" {
		cfg.InitialClusterToken = defaultClusterToken
	}
	clientURL, err := parseURL("client URL", cfg.ClientURL)
	if err != nil {
		return nil, err
	}
	peerURL, err := parseURL("peer URL", cfg.PeerURL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd: data dir: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialClusterToken = cfg.InitialClusterToken
	if cfg.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	} else {
		ec.InitialCluster = cfg.InitialCluster
	}
	switch cfg.InitialClusterState {
	case "", embed.ClusterStateFlagNew:
		ec.ClusterState = embed.ClusterStateFlagNew
	case embed.ClusterStateFlagExisting:
		ec.ClusterState = embed.ClusterStateFlagExisting
	default:
		return nil, fmt.Errorf("cluster: embedded etcd: initial cluster state %q is neither %q nor %q: %w",
			cfg.InitialClusterState, embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting, ErrInvalidArgument)
	}
	// Keep history bounded: watchers that fall behind a compaction relist.
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = "10000"
	if cfg.Logger == nil {
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	} else {
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newSlogZapLogger(cfg.Logger.With("component", "etcd", "member", cfg.Name)))
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("cluster: start embedded etcd member %q (client %s, peer %s): %w", cfg.Name, cfg.ClientURL, cfg.PeerURL, err)
	}
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		abortEtcd(e)
		return nil, fmt.Errorf("cluster: embedded etcd member %q failed while starting: %w", cfg.Name, err)
	case <-timer.C:
		abortEtcd(e)
		return nil, fmt.Errorf("cluster: embedded etcd member %q not ready after %s (a multi-member cluster needs a majority of its members running; initial cluster %q): %w",
			cfg.Name, cfg.ReadyTimeout, ec.InitialCluster, ErrEtcdUnavailable)
	case <-ctx.Done():
		abortEtcd(e)
		return nil, fmt.Errorf("cluster: embedded etcd member %q: waiting for ready: %w", cfg.Name, ctx.Err())
	}
	if len(e.Clients) == 0 {
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd member %q has no client listener", cfg.Name)
	}
	endpoint, err := dialableURL(clientURL.Scheme, e.Clients[0].Addr())
	if err != nil {
		e.Close()
		return nil, err
	}
	return &EmbeddedEtcd{etcd: e, endpoints: []string{endpoint}, name: cfg.Name}, nil
}

// Endpoints returns the client URLs to dial, with the real port when the
// configured one was 0 and 127.0.0.1 when it listens on every interface.
func (e *EmbeddedEtcd) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// Name returns the member name.
func (e *EmbeddedEtcd) Name() string { return e.name }

// Err delivers a fatal error of the running member.
func (e *EmbeddedEtcd) Err() <-chan error { return e.etcd.Err() }

// Close stops the member gracefully. Safe to call more than once.
func (e *EmbeddedEtcd) Close() {
	e.closeOnce.Do(e.etcd.Close)
}

// abortEtcd stops a member that never became ready. embed.Etcd.Close alone
// blocks then: it waits for client servers that only start once the member
// is ready, and they give up only when the server is stopping.
func abortEtcd(e *embed.Etcd) {
	e.Server.HardStop()
	e.Close()
}

func parseURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd: %s %q: %w: %w", what, raw, ErrInvalidArgument, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("cluster: embedded etcd: %s %q: scheme must be http or https: %w", what, raw, ErrInvalidArgument)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("cluster: embedded etcd: %s %q: missing port: %w", what, raw, ErrInvalidArgument)
	}
	return u, nil
}

func dialableURL(scheme string, addr net.Addr) (string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", errors.New("cluster: embedded etcd: client listener is not TCP")
	}
	host := tcp.IP
	if host == nil || host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	return scheme + "://" + net.JoinHostPort(host.String(), fmt.Sprint(tcp.Port)), nil
}
