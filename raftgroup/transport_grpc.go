package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The gRPC transport: one long-lived bidirectional stream per destination
// node carrying batch frames of raft messages (the receiver never answers on
// it), beside it a probe stream whose pings and echoes prove the connection
// alive (transport_liveness.go), and one short-lived stream per snapshot
// (header, chunks, ack). See transport_codec.go for the frame layout.

const (
	transportServiceName    = "quorumdb.raftgroup.RaftTransport"
	transportRaftMethod     = "/" + transportServiceName + "/RaftMessages"
	transportSnapMethod     = "/" + transportServiceName + "/Snapshot"
	transportDefaultQueue   = 1024
	transportDefaultFrame   = 4 << 20
	transportDefaultMaxBO   = time.Second
	transportMinBackoff     = 20 * time.Millisecond
	transportConnectTimeout = 2 * time.Second
)

// GRPCTransportConfig configures NewGRPCTransport.
type GRPCTransportConfig struct {
	// NodeID is this node's ID; frames carry it as the sender, and frames
	// addressed to another node are refused.
	NodeID uint64
	// Resolver maps destination node IDs to addresses. It is called when a
	// connection is (re)established, never on the Send path.
	Resolver AddressResolver
	// Handler receives incoming messages and snapshots. It may be nil here
	// and set later with SetHandler (the Store is usually built after its
	// transport); until then incoming messages are dropped.
	Handler MessageHandler
	// QueueSize bounds the messages waiting per destination (default 1024).
	// Send drops and returns false when the queue is full.
	QueueSize int
	// MaxFrameBytes is the soft size limit of one batch frame (default 4 MiB):
	// draining stops once a frame reaches it.
	MaxFrameBytes int
	// MaxBackoff caps the wait between reconnection attempts (default 1s).
	// After a partition heals, the first message gets through within about
	// MaxBackoff plus what is left of the connection attempt under way (one
	// attempt gives up after 2s when the network still drops packets).
	MaxBackoff time.Duration
	// ProbeInterval is how often the liveness probe pings a peer while a
	// raft stream to it is open (default 1s); a negative value disables
	// probing. Each ping is a few bytes on a stream of its own on the same
	// connection, so it never waits behind a raft batch blocked on flow
	// control. Probes ignore Faults: injected faults drop messages on a
	// healthy connection, which is no dead peer.
	ProbeInterval time.Duration
	// ProbeTimeout is how long the peer may stay silent (no echo since the
	// probe stream opened or since the last echo) before it counts as
	// unreachable (default 3s; raised to twice ProbeInterval if lower, so a
	// ping always has at least one interval to come back). Then the raft
	// stream is torn down, OnUnreachable is called, the queued messages are
	// dropped (raft retransmits) and the client connection is closed, so the
	// next message dials a fresh one. A silent partition (packets dropped, no
	// RST) is thus noticed about ProbeTimeout after it begins instead of when
	// TCP gives up (minutes); gRPC's keepalive cannot go below 10s. Keep
	// ProbeTimeout-ProbeInterval well above the round-trip time under load:
	// a ping shares the TCP connection with the raft batches and waits
	// behind whatever is already in flight.
	ProbeTimeout time.Duration
	// Logger receives connection events (default: discarded).
	Logger *slog.Logger
	// Faults injects network faults in tests; nil in production.
	Faults *FaultInjector
	// OnUnreachable, when set, is called (from a transport goroutine, must not
	// block) when a destination node cannot be reached or its stream broke,
	// so the store can call RawNode.ReportUnreachable for its replicas there.
	OnUnreachable func(nodeID uint64)
}

// GRPCTransportStats counts what the transport did since it started.
type GRPCTransportStats struct {
	MessagesSent      uint64 // raft messages written to a stream
	FramesSent        uint64 // batch frames written (≤ MessagesSent)
	MessagesDropped   uint64 // refused by Send, cut by faults, or lost with a broken stream
	ProbesAnswered    uint64 // liveness pings the peers echoed in time
	PeersUnresponsive uint64 // raft streams torn down because a ping went unanswered
	MessagesReceived  uint64 // raft messages delivered to the handler
	FramesReceived    uint64 // batch frames received
	SnapshotsSent     uint64 // snapshots the receiver acknowledged as applied
	SnapshotsReceived uint64 // snapshots this node's handler applied
}

// GRPCTransport implements Transport over gRPC. Create it with
// NewGRPCTransport, register its service with Register on the node's server
// (created with GRPCServerOptions), and Close it on shutdown.
type GRPCTransport struct {
	cfg     GRPCTransportConfig
	log     *slog.Logger
	handler atomic.Pointer[transportHandlerBox]

	// ctx is cancelled by Close; every goroutine and stream derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts peer workers and the receive goroutines of inbound streams.
	wg sync.WaitGroup

	mu     sync.RWMutex
	closed bool
	peers  map[uint64]*transportPeer
	conns  map[uint64]*transportConn

	stats struct {
		messagesSent, framesSent, messagesDropped atomic.Uint64
		messagesReceived, framesReceived          atomic.Uint64
		snapshotsSent, snapshotsReceived          atomic.Uint64
		probesAnswered, peersUnresponsive         atomic.Uint64
	}
}

type transportHandlerBox struct{ h MessageHandler }

// transportPeer is the outgoing side towards one node: its queue and the
// worker goroutine that owns its stream.
type transportPeer struct {
	nodeID uint64
	queue  chan *RaftMessage
}

// transportConn is the client connection to one node, shared by its raft
// stream and its snapshot streams.
type transportConn struct {
	addr string
	cc   *grpc.ClientConn
}

// NewGRPCTransport returns a transport ready to Send; outgoing connections
// are made lazily on the first message to each node.
func NewGRPCTransport(cfg GRPCTransportConfig) *GRPCTransport {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = transportDefaultQueue
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = transportDefaultFrame
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = transportDefaultMaxBO
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = transportDefaultProbeInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = transportDefaultProbeTimeout
	}
	// A ping goes out ProbeInterval after the last echo and must be back
	// ProbeTimeout after it: leave it at least one interval.
	if cfg.ProbeInterval > 0 && cfg.ProbeTimeout < 2*cfg.ProbeInterval {
		cfg.ProbeTimeout = 2 * cfg.ProbeInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &GRPCTransport{
		cfg:    cfg,
		log:    log.With("component", "transport", "node", cfg.NodeID),
		ctx:    ctx,
		cancel: cancel,
		peers:  make(map[uint64]*transportPeer),
		conns:  make(map[uint64]*transportConn),
	}
	if cfg.Handler != nil {
		t.handler.Store(&transportHandlerBox{h: cfg.Handler})
	}
	return t
}

// SetHandler sets the receiver of incoming messages and snapshots.
func (t *GRPCTransport) SetHandler(h MessageHandler) {
	t.handler.Store(&transportHandlerBox{h: h})
}

func (t *GRPCTransport) currentHandler() MessageHandler {
	if b := t.handler.Load(); b != nil {
		return b.h
	}
	return nil
}

// Stats returns the transport's counters.
func (t *GRPCTransport) Stats() GRPCTransportStats {
	return GRPCTransportStats{
		MessagesSent:      t.stats.messagesSent.Load(),
		FramesSent:        t.stats.framesSent.Load(),
		MessagesDropped:   t.stats.messagesDropped.Load(),
		ProbesAnswered:    t.stats.probesAnswered.Load(),
		PeersUnresponsive: t.stats.peersUnresponsive.Load(),
		MessagesReceived:  t.stats.messagesReceived.Load(),
		FramesReceived:    t.stats.framesReceived.Load(),
		SnapshotsSent:     t.stats.snapshotsSent.Load(),
		SnapshotsReceived: t.stats.snapshotsReceived.Load(),
	}
}

// Register adds the transport's service to s, which must have been created
// with GRPCServerOptions. The caller owns s (it may host other services) and
// stops it; Close makes the transport's handlers return.
func (t *GRPCTransport) Register(s *grpc.Server) {
	s.RegisterService(transportServiceDesc(), t)
}

// transportServiceDesc is the hand-written service description (no protoc).
// Every method is a bidirectional stream of raw frames. A function rather
// than a package variable: the package keeps no mutable globals.
func transportServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: transportServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{
			{
				StreamName:    "RaftMessages",
				Handler:       func(srv any, s grpc.ServerStream) error { return srv.(*GRPCTransport).serveRaftStream(s) },
				ServerStreams: true,
				ClientStreams: true,
			},
			{
				StreamName:    "Snapshot",
				Handler:       func(srv any, s grpc.ServerStream) error { return srv.(*GRPCTransport).serveSnapshot(s) },
				ServerStreams: true,
				ClientStreams: true,
			},
			{
				StreamName:    "Probe",
				Handler:       func(srv any, s grpc.ServerStream) error { return srv.(*GRPCTransport).serveProbe(s) },
				ServerStreams: true,
				ClientStreams: true,
			},
		},
		Metadata: "raftgroup/transport_grpc.go",
	}
}

// transportStreamDesc describes all of the transport's streams on the client
// side (bidirectional).
func transportStreamDesc() *grpc.StreamDesc {
	return &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
}

// Send queues msg for its destination and never blocks. It returns false when
// the message was dropped: nil message, unknown destination (0), transport
// closed, fault injection, or the destination's queue is full.
func (t *GRPCTransport) Send(msg *RaftMessage) bool {
	if msg == nil || msg.Message == nil || msg.ToNode == 0 {
		return false
	}
	if t.cfg.Faults.ShouldDrop(t.cfg.NodeID, msg.ToNode) {
		t.stats.messagesDropped.Add(1)
		return false
	}
	p := t.peer(msg.ToNode)
	if p == nil {
		return false
	}
	select {
	case p.queue <- msg:
		return true
	default:
		t.stats.messagesDropped.Add(1)
		return false
	}
}

// peer returns the outgoing side towards nodeID, starting its worker on first
// use; nil once the transport is closed.
func (t *GRPCTransport) peer(nodeID uint64) *transportPeer {
	t.mu.RLock()
	p, closed := t.peers[nodeID], t.closed
	t.mu.RUnlock()
	if closed {
		return nil
	}
	if p != nil {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if p = t.peers[nodeID]; p != nil {
		return p
	}
	p = &transportPeer{nodeID: nodeID, queue: make(chan *RaftMessage, t.cfg.QueueSize)}
	t.peers[nodeID] = p
	t.wg.Add(1)
	go t.runPeer(p)
	return p
}

// conn returns the client connection to nodeID, resolving its address and
// replacing the connection when the address changed.
func (t *GRPCTransport) conn(nodeID uint64) (*grpc.ClientConn, error) {
	if t.cfg.Resolver == nil {
		return nil, fmt.Errorf("resolve node %d: transport has no address resolver", nodeID)
	}
	addr, err := t.cfg.Resolver(nodeID)
	if err != nil {
		return nil, fmt.Errorf("resolve node %d: %w", nodeID, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTransportClosed
	}
	if c := t.conns[nodeID]; c != nil {
		if c.addr == addr {
			return c.cc, nil
		}
		// The node moved; streams on the old connection fail and reconnect.
		_ = c.cc.Close()
		delete(t.conns, nodeID)
	}
	cc, err := grpcDial(addr, t.cfg.MaxBackoff, transportConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial node %d at %s: %w", nodeID, addr, err)
	}
	t.conns[nodeID] = &transportConn{addr: addr, cc: cc}
	return cc, nil
}

// grpcDial creates a lazily connecting client with short reconnection
// backoff, so a restarted peer is found again within maxBackoff; one
// connection attempt lasts at most connectTimeout.
func grpcDial(addr string, maxBackoff, connectTimeout time.Duration) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  transportMinBackoff,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxBackoff,
			},
			MinConnectTimeout: connectTimeout,
		}),
		grpc.WithDefaultCallOptions(grpcCallOptions()...),
	)
}

// runPeer owns the stream towards one node: it (re)connects with backoff and
// pumps batches until Close.
func (t *GRPCTransport) runPeer(p *transportPeer) {
	defer t.wg.Done()
	wait := time.Duration(0)
	for {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-t.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		sent, err := t.streamToPeer(p)
		if t.ctx.Err() != nil {
			return
		}
		t.log.Debug("raft stream ended", "peer", p.nodeID, "err", err)
		if t.cfg.OnUnreachable != nil {
			t.cfg.OnUnreachable(p.nodeID)
		}
		// Whatever waited while the peer was unreachable is stale: Raft
		// retransmits what still matters.
		t.dropQueued(p)
		if sent {
			wait = transportMinBackoff
		} else {
			wait = min(max(2*wait, transportMinBackoff), t.cfg.MaxBackoff)
		}
	}
}

func (t *GRPCTransport) dropQueued(p *transportPeer) {
	for {
		select {
		case <-p.queue:
			t.stats.messagesDropped.Add(1)
		default:
			return
		}
	}
}

// streamToPeer opens one raft stream and sends batches on it until it breaks,
// the liveness probe gives up on the peer, or the transport closes. sent
// reports whether any frame went out (the connection worked, so reconnect
// quickly).
func (t *GRPCTransport) streamToPeer(p *transportPeer) (sent bool, err error) {
	// Wait for the first message before resolving and opening the stream so
	// an idle (or removed) destination costs no connection attempts.
	var first *RaftMessage
	select {
	case <-t.ctx.Done():
		return false, t.ctx.Err()
	case first = <-p.queue:
	}
	cc, err := t.conn(p.nodeID)
	if err != nil {
		t.stats.messagesDropped.Add(1)
		return false, err
	}
	// The prober ends the stream through cancel, with the reason as cause.
	ctx, cancel := context.WithCancelCause(t.ctx)
	probing := make(chan struct{})
	defer func() {
		cancel(nil)
		<-probing
	}()
	stream, err := cc.NewStream(ctx, transportStreamDesc(), transportRaftMethod)
	if err != nil {
		close(probing)
		t.stats.messagesDropped.Add(1)
		return false, fmt.Errorf("open raft stream to node %d: %w", p.nodeID, err)
	}
	if t.cfg.ProbeInterval > 0 {
		go func() {
			defer close(probing)
			t.probePeer(ctx, cc, p.nodeID, cancel)
		}()
	} else {
		close(probing)
	}
	// ended explains why ctx ended: the transport closed, or the prober's
	// verdict (after which the connection itself is suspect and replaced).
	ended := func(fallback error) error {
		if t.ctx.Err() != nil {
			return t.ctx.Err()
		}
		cause := context.Cause(ctx)
		if cause == nil || errors.Is(cause, context.Canceled) {
			return fallback
		}
		var unresponsive *PeerUnresponsiveError
		if errors.As(cause, &unresponsive) {
			t.stats.peersUnresponsive.Add(1)
			t.log.Warn("peer unresponsive: dropping its raft stream and connection", "peer", p.nodeID, "err", cause)
			t.dropConn(p.nodeID, cc)
		}
		return fmt.Errorf("raft stream to node %d: %w", p.nodeID, cause)
	}
	var enc transportBatchEncoder
	for {
		enc.reset(t.cfg.NodeID, p.nodeID)
		t.fillBatch(&enc, p, first)
		first = nil
		if enc.count > 0 {
			if d := t.cfg.Faults.Delay(); d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-ctx.Done():
					timer.Stop()
					t.stats.messagesDropped.Add(uint64(enc.count))
					return sent, ended(ctx.Err())
				case <-timer.C:
				}
			}
			frame := grpcRawFrame(enc.buf)
			if err := stream.SendMsg(&frame); err != nil {
				t.stats.messagesDropped.Add(uint64(enc.count))
				if ctx.Err() != nil {
					return sent, ended(err)
				}
				return sent, t.streamError(stream, p.nodeID, err)
			}
			sent = true
			t.stats.framesSent.Add(1)
			t.stats.messagesSent.Add(uint64(enc.count))
		}
		select {
		case <-ctx.Done():
			if t.ctx.Err() != nil {
				_ = stream.CloseSend()
			}
			return sent, ended(ctx.Err())
		case first = <-p.queue:
		}
	}
}

// dropConn closes the client connection to nodeID if cc is still the one in
// use, so the next stream dials a fresh TCP connection: a connection whose
// peer stopped answering may be silently dead, and gRPC would keep using it.
// Snapshot streams on it fail (they would hang on it otherwise).
func (t *GRPCTransport) dropConn(nodeID uint64, cc *grpc.ClientConn) {
	t.mu.Lock()
	c := t.conns[nodeID]
	if c == nil || c.cc != cc {
		t.mu.Unlock()
		return
	}
	delete(t.conns, nodeID)
	t.mu.Unlock()
	if err := cc.Close(); err != nil {
		t.log.Debug("closing the connection of an unresponsive peer", "peer", nodeID, "err", err)
	}
}

// fillBatch encodes first and then whatever else is queued, up to the frame
// size limit, skipping messages a fault now cuts.
func (t *GRPCTransport) fillBatch(enc *transportBatchEncoder, p *transportPeer, first *RaftMessage) {
	add := func(m *RaftMessage) {
		if t.cfg.Faults.Cut(t.cfg.NodeID, p.nodeID) {
			t.stats.messagesDropped.Add(1)
			return
		}
		if err := enc.add(m.RangeID, m.Message); err != nil {
			t.stats.messagesDropped.Add(1)
			t.log.Warn("dropping unencodable raft message", "peer", p.nodeID, "err", err)
		}
	}
	add(first)
	for len(enc.buf) < t.cfg.MaxFrameBytes {
		select {
		case m := <-p.queue:
			add(m)
		default:
			return
		}
	}
}

// streamError turns a failed SendMsg into the stream's real status: SendMsg
// reports io.EOF when the server ended the stream, RecvMsg then says why.
func (t *GRPCTransport) streamError(stream grpc.ClientStream, nodeID uint64, err error) error {
	if errors.Is(err, io.EOF) {
		var discard grpcRawFrame
		if rerr := stream.RecvMsg(&discard); rerr != nil && !errors.Is(rerr, io.EOF) {
			err = rerr
		}
	}
	return fmt.Errorf("raft stream to node %d: %w", nodeID, err)
}

// trackInbound registers an inbound stream's receive goroutine so Close waits
// for it; false once closed.
func (t *GRPCTransport) trackInbound() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// serveRaftStream receives batch frames from one peer. The frames are read
// by a goroutine so Close can make the handler return at once (which cancels
// the stream and ends that goroutine's RecvMsg).
func (t *GRPCTransport) serveRaftStream(stream grpc.ServerStream) error {
	if !t.trackInbound() {
		return status.Error(codes.Unavailable, ErrTransportClosed.Error())
	}
	errc := make(chan error, 1)
	go func() {
		defer t.wg.Done()
		errc <- t.receiveRaftFrames(stream)
	}()
	select {
	case err := <-errc:
		return err
	case <-t.ctx.Done():
		return status.Error(codes.Unavailable, ErrTransportClosed.Error())
	}
}

func (t *GRPCTransport) receiveRaftFrames(stream grpc.ServerStream) error {
	ctx := stream.Context()
	for {
		var frame grpcRawFrame
		if err := stream.RecvMsg(&frame); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		batch, err := transportDecodeBatch(frame)
		if err != nil {
			t.log.Warn("closing raft stream", "err", err)
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if batch.toNode != t.cfg.NodeID {
			err := &MisdirectedFrameError{ToNode: batch.toNode, At: t.cfg.NodeID}
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		t.stats.framesReceived.Add(1)
		h := t.currentHandler()
		for _, m := range batch.messages {
			if h == nil || t.cfg.Faults.Cut(batch.fromNode, t.cfg.NodeID) {
				continue
			}
			t.stats.messagesReceived.Add(1)
			if err := h.HandleRaftMessage(ctx, m); err != nil {
				t.log.Debug("raft message refused", "from", batch.fromNode, "range", m.RangeID, "err", err)
			}
		}
	}
}

// SendSnapshot streams a snapshot to header.ToNode on a stream of its own and
// returns once the receiver applied it (nil), refused it
// (*SnapshotRejectedError), or the stream failed. ctx bounds the whole
// transfer; Close aborts it.
func (t *GRPCTransport) SendSnapshot(ctx context.Context, header *RaftMessage, data SnapshotSource) error {
	if header == nil || header.Message == nil || header.ToNode == 0 {
		return fmt.Errorf("send snapshot: header needs a message and a destination node")
	}
	if data == nil {
		return fmt.Errorf("send snapshot of range %d: no data source", header.RangeID)
	}
	to := header.ToNode
	if t.cfg.Faults.ShouldDrop(t.cfg.NodeID, to) {
		return fmt.Errorf("send snapshot of range %d: %w", header.RangeID, &FaultInjectedError{From: t.cfg.NodeID, To: to})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	if d := t.cfg.Faults.Delay(); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return t.snapshotCtxErr(ctx, header)
		case <-timer.C:
		}
	}
	cc, err := t.conn(to)
	if err != nil {
		return fmt.Errorf("send snapshot of range %d: %w", header.RangeID, err)
	}
	stream, err := cc.NewStream(ctx, transportStreamDesc(), transportSnapMethod)
	if err != nil {
		if ctx.Err() != nil {
			return t.snapshotCtxErr(ctx, header)
		}
		return fmt.Errorf("send snapshot of range %d to node %d: %w", header.RangeID, to, err)
	}
	h := *header
	h.FromNode = t.cfg.NodeID
	hf, err := transportEncodeSnapshotHeader(&h)
	if err != nil {
		return err
	}
	// receiverDone is set when SendMsg reports io.EOF: the receiver already
	// answered (typically a rejection) and the ack is waiting.
	receiverDone := false
	sendErr := stream.SendMsg(&hf)
	if sendErr == nil {
		sendErr = data(func(chunk []byte) error {
			f := transportEncodeSnapshotChunk(chunk)
			return stream.SendMsg(&f)
		})
	}
	switch {
	case sendErr == nil:
		if err := stream.CloseSend(); err != nil {
			return fmt.Errorf("send snapshot of range %d to node %d: close send: %w", header.RangeID, to, err)
		}
	case errors.Is(sendErr, io.EOF):
		receiverDone = true
	default:
		if ctx.Err() != nil {
			return t.snapshotCtxErr(ctx, header)
		}
		return fmt.Errorf("send snapshot of range %d to node %d: %w", header.RangeID, to, sendErr)
	}
	var ack grpcRawFrame
	if err := stream.RecvMsg(&ack); err != nil {
		if ctx.Err() != nil {
			return t.snapshotCtxErr(ctx, header)
		}
		return fmt.Errorf("send snapshot of range %d to node %d: waiting for ack (receiver done early: %v): %w",
			header.RangeID, to, receiverDone, err)
	}
	rejected, reason, err := transportDecodeSnapshotAck(ack)
	if err != nil {
		return fmt.Errorf("send snapshot of range %d to node %d: %w", header.RangeID, to, err)
	}
	if rejected {
		return &SnapshotRejectedError{NodeID: to, RangeID: header.RangeID, Reason: reason}
	}
	t.stats.snapshotsSent.Add(1)
	return nil
}

func (t *GRPCTransport) snapshotCtxErr(ctx context.Context, header *RaftMessage) error {
	if t.ctx.Err() != nil {
		return fmt.Errorf("send snapshot of range %d: %w", header.RangeID, ErrTransportClosed)
	}
	return fmt.Errorf("send snapshot of range %d to node %d: %w", header.RangeID, header.ToNode, context.Cause(ctx))
}

// serveSnapshot receives one snapshot: a goroutine reads the frames and runs
// the handler, this one sends the ack (so only one goroutine ever sends on
// the stream) or returns at once on Close.
func (t *GRPCTransport) serveSnapshot(stream grpc.ServerStream) error {
	if !t.trackInbound() {
		return status.Error(codes.Unavailable, ErrTransportClosed.Error())
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	resc := make(chan error, 1)
	go func() {
		defer t.wg.Done()
		resc <- t.receiveSnapshot(ctx, stream)
	}()
	select {
	case err := <-resc:
		ack := transportEncodeSnapshotAck(err)
		if err == nil {
			t.stats.snapshotsReceived.Add(1)
		}
		return stream.SendMsg(&ack)
	case <-t.ctx.Done():
		return status.Error(codes.Unavailable, ErrTransportClosed.Error())
	}
}

func (t *GRPCTransport) receiveSnapshot(ctx context.Context, stream grpc.ServerStream) error {
	var first grpcRawFrame
	if err := stream.RecvMsg(&first); err != nil {
		return fmt.Errorf("receive snapshot header: %w", err)
	}
	header, err := transportDecodeSnapshotHeader(first)
	if err != nil {
		return err
	}
	if header.ToNode != t.cfg.NodeID {
		return &MisdirectedFrameError{ToNode: header.ToNode, At: t.cfg.NodeID}
	}
	if t.cfg.Faults.Cut(header.FromNode, t.cfg.NodeID) {
		return &FaultInjectedError{From: header.FromNode, To: t.cfg.NodeID}
	}
	h := t.currentHandler()
	if h == nil {
		return fmt.Errorf("node %d has no message handler yet", t.cfg.NodeID)
	}
	eof := false
	recv := func() ([]byte, error) {
		if eof {
			return nil, io.EOF
		}
		var f grpcRawFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				eof = true
				return nil, io.EOF
			}
			return nil, fmt.Errorf("receive snapshot chunk of range %d: %w", header.RangeID, err)
		}
		if len(f) == 0 || f[0] != grpcFrameSnapshotChunk {
			return nil, &MalformedFrameError{Reason: "expected a snapshot chunk frame"}
		}
		return f[1:], nil
	}
	return h.HandleSnapshot(ctx, header, recv)
}

// Close stops every stream and goroutine of the transport and closes its
// connections. Messages still queued are dropped. It is idempotent.
func (t *GRPCTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	t.wg.Wait()
	var errs []error
	for id, c := range conns {
		if err := c.cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to node %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

var _ Transport = (*GRPCTransport)(nil)
