package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Liveness probing of the connection towards each peer.
//
// A silent partition (packets dropped, no RST) leaves a TCP connection
// looking healthy: writes land in the kernel's send buffer and nothing fails
// until TCP's retransmissions give up, minutes later, and gRPC's client
// keepalive cannot go below 10 s. Meanwhile raft messages pile into a dead
// stream and nobody learns the peer is unreachable; after the partition heals
// the old connection resumes only at TCP's next exponentially backed-off
// retransmission (several seconds).
//
// So while a raft stream to a peer is open, a prober sends a ping every
// ProbeInterval on a stream of its own (RaftTransport/Probe) on the same
// client connection, with at most one ping outstanding; the peer echoes each
// ping. When nothing was heard from the peer for ProbeTimeout (the stream
// opened or the last echo came that long ago, and the ping sent since is
// still unanswered), the sender tears the raft stream down, report the peer unreachable (OnUnreachable), drop what was
// queued for it (raft retransmits) and close the client connection, so the
// next message dials a fresh TCP connection instead of waiting on the dead
// one.
//
// The pings travel on their own stream rather than between the raft batches
// because a batch send can block on HTTP/2 flow control for as long as the
// connection is dead (the window never reopens), and a ping queued behind
// megabytes of batches would measure the backlog, not the peer. A separate
// stream is scheduled independently by gRPC's writer and its pings never wait
// for a blocked batch.
//
// A ping is an empty raft batch frame (from this node, to the peer) and an
// echo is an empty batch frame the other way, so the probe needs no new frame
// kind. The sender announces in the stream's metadata how long the receiver
// may go without a ping; a receiver hearing nothing for that long ends its
// side of the probe stream, which puts bytes in flight on a connection that
// is otherwise silent from its side, so TCP eventually notices the dead
// connection there too and frees its inbound streams.
//
// Probes ignore the FaultInjector: it models lost messages on a healthy
// connection, which must not look like a dead peer.

const (
	transportProbeMethod          = "/" + transportServiceName + "/Probe"
	transportDefaultProbeInterval = time.Second
	transportDefaultProbeTimeout  = 3 * time.Second
	// transportProbeSilenceKey carries, in the probe stream's metadata, the
	// milliseconds the receiver may go without a ping before it gives up.
	transportProbeSilenceKey = "quorumdb-probe-silence-ms"
)

// PeerUnresponsiveError is the cause a raft stream ends with when the
// liveness probe heard nothing from the peer for the configured ProbeTimeout.
type PeerUnresponsiveError struct {
	NodeID  uint64
	Stage   string // "opening the probe stream" or "waiting for a ping's echo"
	Timeout time.Duration
}

func (e *PeerUnresponsiveError) Error() string {
	return fmt.Sprintf("raftgroup: node %d unresponsive: nothing heard for %v (%s)", e.NodeID, e.Timeout, e.Stage)
}

// transportProbeFrame is a ping (from this node to the peer) or, with the
// nodes swapped, its echo: an empty raft batch frame.
func transportProbeFrame(fromNode, toNode uint64) grpcRawFrame {
	var enc transportBatchEncoder
	enc.reset(fromNode, toNode)
	return enc.buf
}

// transportDecodeProbeFrame checks that frame is an empty batch from fromNode
// to toNode.
func transportDecodeProbeFrame(frame grpcRawFrame) (fromNode, toNode uint64, err error) {
	b, err := transportDecodeBatch(frame)
	if err != nil {
		return 0, 0, err
	}
	if len(b.messages) != 0 {
		return 0, 0, &MalformedFrameError{Reason: fmt.Sprintf("probe frame carries %d raft messages", len(b.messages))}
	}
	return b.fromNode, b.toNode, nil
}

// probePeer pings nodeID over cc until ctx ends, and calls dead with the
// reason when the peer stops answering or the probe stream breaks. dead must
// cancel ctx (it is the raft stream's cancel function). A peer whose server
// has no probe method is not probed.
func (t *GRPCTransport) probePeer(ctx context.Context, cc *grpc.ClientConn, nodeID uint64, dead context.CancelCauseFunc) {
	interval, timeout := t.cfg.ProbeInterval, t.cfg.ProbeTimeout
	unresponsive := func(stage string) func() {
		return func() { dead(&PeerUnresponsiveError{NodeID: nodeID, Stage: stage, Timeout: timeout}) }
	}
	// Opening is bounded too: on a connection that is still handshaking
	// NewStream waits for it.
	openDeadline := time.AfterFunc(timeout, unresponsive("opening the probe stream"))
	silence := interval + 2*timeout
	md := metadata.Pairs(transportProbeSilenceKey, strconv.FormatInt(silence.Milliseconds(), 10))
	stream, err := cc.NewStream(metadata.NewOutgoingContext(ctx, md), transportStreamDesc(), transportProbeMethod)
	if !openDeadline.Stop() {
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			dead(fmt.Errorf("open probe stream to node %d: %w", nodeID, err))
		}
		return
	}
	echoes := make(chan struct{}, 1)
	// received is closed when the receive goroutine returns: after ctx
	// ended, after it called dead, or when the peer has no probe method.
	received := make(chan struct{})
	go func() {
		defer close(received)
		t.receiveProbeEchoes(ctx, stream, nodeID, echoes, dead)
	}()
	defer func() { <-received }()

	ping := transportProbeFrame(t.cfg.NodeID, nodeID)
	waitEcho := unresponsive("waiting for a ping's echo")
	lastHeard := time.Now()
	for {
		sentAt := time.Now()
		// The verdict is due ProbeTimeout after the peer was last heard
		// from, which leaves this ping about ProbeTimeout-ProbeInterval to
		// come back (NewGRPCTransport keeps that at least ProbeInterval), and
		// never less: a ping sent late because this process stalled gets its
		// full share. The verdict runs on a timer, not in this loop, so even
		// a SendMsg stuck on a dead connection cannot postpone it.
		deadline := time.AfterFunc(max(lastHeard.Add(timeout).Sub(sentAt), timeout-interval), waitEcho)
		if err := stream.SendMsg(&ping); err != nil {
			// io.EOF: the server ended the stream, and the receive goroutine
			// (the only one that may call RecvMsg) is learning why.
			if errors.Is(err, io.EOF) {
				select {
				case <-ctx.Done():
				case <-received:
				}
			} else if ctx.Err() == nil {
				dead(fmt.Errorf("probe stream to node %d: %w", nodeID, err))
			}
			deadline.Stop()
			return
		}
		select {
		case <-ctx.Done():
			deadline.Stop()
			return
		case <-received:
			deadline.Stop() // the peer cannot be probed
			return
		case <-echoes:
		}
		if !deadline.Stop() {
			return // the echo came after the verdict
		}
		lastHeard = time.Now()
		t.stats.probesAnswered.Add(1)
		if wait := interval - time.Since(sentAt); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}
}

// receiveProbeEchoes reads echoes until the stream ends, signalling each on
// echoes; a malformed echo or a broken stream is reported through dead. A
// peer without the probe method (another version) is left unprobed: its
// raft stream works and only a silent partition goes unnoticed.
func (t *GRPCTransport) receiveProbeEchoes(ctx context.Context, stream grpc.ClientStream, nodeID uint64, echoes chan<- struct{}, dead context.CancelCauseFunc) {
	for {
		var frame grpcRawFrame
		if err := stream.RecvMsg(&frame); err != nil {
			switch {
			case ctx.Err() != nil:
			case status.Code(err) == codes.Unimplemented:
				t.log.Warn("peer does not answer liveness probes; a silent partition towards it goes unnoticed", "peer", nodeID)
			case errors.Is(err, io.EOF):
				dead(fmt.Errorf("probe stream to node %d: peer ended it", nodeID))
			default:
				dead(fmt.Errorf("probe stream to node %d: %w", nodeID, err))
			}
			return
		}
		from, to, err := transportDecodeProbeFrame(frame)
		if err == nil && (from != nodeID || to != t.cfg.NodeID) {
			err = &MalformedFrameError{Reason: fmt.Sprintf("probe echo from node %d to node %d on the stream from node %d to node %d", from, to, t.cfg.NodeID, nodeID)}
		}
		if err != nil {
			dead(fmt.Errorf("probe stream to node %d: %w", nodeID, err))
			return
		}
		select {
		case echoes <- struct{}{}:
		default: // one ping is outstanding at a time; an extra echo adds nothing
		}
	}
}

// serveProbe echoes the pings of one peer's prober. A goroutine reads the
// pings; this one sends the echoes (the only sender on the stream), ends the
// stream when the pings stop for longer than the sender announced, and
// returns at once on Close.
func (t *GRPCTransport) serveProbe(stream grpc.ServerStream) error {
	if !t.trackInbound() {
		return status.Error(codes.Unavailable, ErrTransportClosed.Error())
	}
	ctx := stream.Context()
	pings := make(chan uint64, 1)
	errc := make(chan error, 1)
	go func() {
		defer t.wg.Done()
		errc <- t.receiveProbePings(ctx, stream, pings)
	}()
	var silenceC <-chan time.Time
	silence := transportProbeSilence(ctx)
	var silenceTimer *time.Timer
	if silence > 0 {
		silenceTimer = time.NewTimer(silence)
		defer silenceTimer.Stop()
		silenceC = silenceTimer.C
	}
	for {
		select {
		case err := <-errc:
			return err
		case <-t.ctx.Done():
			return status.Error(codes.Unavailable, ErrTransportClosed.Error())
		case <-silenceC:
			return status.Errorf(codes.DeadlineExceeded, "no liveness probe for %v", silence)
		case from := <-pings:
			if silenceTimer != nil {
				silenceTimer.Reset(silence)
			}
			echo := transportProbeFrame(t.cfg.NodeID, from)
			if err := stream.SendMsg(&echo); err != nil {
				return err
			}
		}
	}
}

// transportProbeSilence reads how long the prober allows between pings from
// the stream's metadata; 0 (never give up) when absent or unreadable.
func transportProbeSilence(ctx context.Context) time.Duration {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(transportProbeSilenceKey)
	if len(vals) == 0 {
		return 0
	}
	ms, err := strconv.ParseInt(vals[0], 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func (t *GRPCTransport) receiveProbePings(ctx context.Context, stream grpc.ServerStream, pings chan<- uint64) error {
	for {
		var frame grpcRawFrame
		if err := stream.RecvMsg(&frame); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		from, to, err := transportDecodeProbeFrame(frame)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if to != t.cfg.NodeID {
			err := &MisdirectedFrameError{ToNode: to, At: t.cfg.NodeID}
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		select {
		case pings <- from:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
