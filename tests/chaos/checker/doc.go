// Package checker judges histories recorded by the chaos suite
// (tests/chaos): what clients asked, when, and what they were told.
//
// It owns the history model (Op with invoke/complete times and an Outcome of
// ok, fail or unknown) and one checker per workload:
//
//   - Bank: every snapshot read sums to the fixed total with no negative
//     balance; the ledger written by each transfer's own transaction replays
//     from the initial balances to the final ones; every acknowledged
//     transfer is in the ledger and no refused one is.
//   - Register: each key is a linearizable register (read, write,
//     compare-and-set), checked with porcupine; an unknown write or CAS may
//     take effect at any time after its invocation, or never.
//   - Set: every acknowledged insert is in the final read, no refused one is,
//     no element appears twice, nothing appears that nobody inserted.
//   - ListAppend: Elle-style. Lists only grow, so the longest read of a key
//     gives its version order; ww, wr and rw edges between committed
//     transactions must form no cycle, every read must be a prefix of that
//     order, and no read may show an element of a refused transaction.
//   - Withdrawals: of two concurrent 10 EUR withdrawals from 15 EUR, never
//     both, and the final balance is 15 or 5 consistently with the outcomes.
//   - Gaps and SplitBrain: availability (longest time without a successful
//     commit, time to the first commit after each fault and heal) and the
//     partition rule that the minority side acknowledges no commit.
//
// It must not talk to a database or start anything: checkers are pure
// functions of a history, so they are tested on hand-made bad histories.
// Invariant: an "unknown" outcome is never counted as a failure or as a
// success; a "fail" outcome is definite (the transaction did not commit).
package checker
