// Package raftgroup is the multi-Raft layer: one Store per node hosting many
// replicas (one go.etcd.io/raft/v3 RawNode per range, no goroutine per range),
// the raft log storage on the node's pebble DB, the transport between nodes,
// snapshots, membership changes, splits, linearizable reads through ReadIndex,
// and the placement driver that repairs and splits ranges.
//
// # Using a Store
//
//	s, _ := raftgroup.NewStore(raftgroup.Config{NodeID: id, Engine: eng, Transport: t, Clock: tso})
//	t.SetHandler(s)            // the transport delivers to s (MessageHandler)
//	s.BootstrapRange(ctx, desc) // first range of a new cluster, on each of its nodes
//	s.Start()
//	resp, err := s.Execute(ctx, rangeID, req) // kv requests: writes through raft, reads by ReadIndex
//	s.SplitRange / ChangeReplicas / TransferLeadership // on the range's leader
//	s.Stop()                   // then close the engine
//
// NewStore reloads every replica persisted in the engine; Start schedules
// them all so each re-applies the entries between its applied index and its
// commit index.
//
// # The Ready loop
//
// Other goroutines never touch a RawNode: they queue work (messages,
// proposals, reads, ticks, closures) in the replica's inbox and mark the range
// in the store's scheduler. A small pool of workers (Config.Workers) takes
// batches of marked ranges; a range belongs to one worker at a time. One
// worker round over its ranges:
//
//  1. step the inbox of each range into its RawNode and collect the Readys;
//  2. ingest incoming snapshots, then write the log entries and hard states of
//     all Readys into one pebble batch and commit it with one fsync;
//  3. send the messages (only now: they may promise what is durable);
//  4. apply the committed entries of all ranges into one indexed batch that
//     also holds each range's applied state, commit it without sync (the log
//     is durable; a restart re-applies), and answer the waiting proposals;
//  5. Advance every RawNode, truncate long logs, reschedule ranges with more
//     work.
//
// # Invariants
//
//   - A range's RawNode and its raft.Storage are used by the owning worker
//     only; the in-memory log bounds change only after the batch holding the
//     change is durable.
//   - Apply is deterministic: kv.Evaluate plus this package's split and
//     membership commands, with the descriptor in force at apply; the
//     descriptor and applied state are written in the same batch as the
//     state change. A membership change's descriptor is derived from the
//     descriptor in force at apply and the ConfChangeV2's own changes,
//     never taken from the proposal, and a split is refused while a learner
//     is present or the configuration is joint.
//   - A proposal is answered once: with its apply result, with
//     *kv.ProposalDroppedError when another entry took its log index (it can
//     never apply), or with *kv.RangeUnavailableError when the bounded wait
//     ran out (outcome unknown). No call waits without a bound.
//   - Proposals are made on the leader only (DisableProposalForwarding);
//     reads are served by the leader after a ReadIndex (ReadOnlySafe) once
//     the applied index reaches it, except Get/Scan at or below the
//     replica's applied closed timestamp, which any replica serves from its
//     own state (replica_closedts.go: a close entry raises max_read_ts in
//     the same critical section that queues it, and a 1PC fixes its
//     timestamp and queues its entry in one critical section, so no write
//     at or below a closed timestamp follows its close in the log).
//   - 1PC commands get commit_ts = max(requested, max_read_ts+1) on the leader
//     and latch their keys until they apply; reads register their timestamp in
//     max_read_ts and wait for latches on their keys (TXN.md, "The 1PC
//     hazard"). A new leader seeds max_read_ts from Config.Clock.
//   - New ranges (bootstrap, split) start with a synthetic log truncated at
//     index 10, term 5: an empty replica can only catch up by snapshot.
//   - Replica IDs are never reused; a removed replica's data is deleted and a
//     tombstone keeps its older IDs out.
//   - An idle group quiesces (stops ticking); any proposal, request or
//     non-heartbeat message wakes it, and so does ReportUnreachable for a
//     node holding one of its replicas (the store probes the nodes leading
//     its quiesced ranges once per election timeout).
//
// raftgroup must not evaluate SQL or transactions, keep authoritative state
// outside the range's own raft state, or block a worker on the network.
package raftgroup
