package checker

import (
	"fmt"
	"sort"
)

// BankModel describes the bank the history ran against.
type BankModel struct {
	Accounts int   // accounts 1..Accounts
	Initial  int64 // each account's starting balance
}

// Bank checks a bank history:
//
//   - every ok "read" (one snapshot of all balances) has every account,
//     sums to Accounts×Initial and has no negative balance;
//   - the final "ledger" op (Elements = transfer IDs found in the ledger
//     table) holds every ok transfer that Applied, no failed transfer, no
//     ID twice and no ID nobody used;
//   - replaying the ledger from the initial balances gives the final read's
//     balances exactly (each transfer's ledger row commits in its own
//     transaction, so a lost or doubled balance change shows here).
func Bank(m BankModel, ops []Op) Result {
	r := Result{Checker: "bank"}
	total := int64(m.Accounts) * m.Initial
	transfers := map[int64]Op{}
	var ledger, final *Op
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case "transfer":
			transfers[op.ID] = *op
		case "ledger":
			if op.Outcome == OK {
				ledger = op
			}
		case "read":
			if op.Outcome != OK {
				continue
			}
			if op.Final {
				final = op
			}
			var sum int64
			for acct, bal := range op.Balances {
				sum += bal
				if bal < 0 {
					r.add("negative-balance", "read by process %d via %s at %s: account %d has %d", op.Process, op.Node, fmtNanos(op.Complete), acct, bal)
				}
			}
			if len(op.Balances) != m.Accounts {
				r.add("wrong-account-count", "read via %s at %s saw %d accounts, want %d", op.Node, fmtNanos(op.Complete), len(op.Balances), m.Accounts)
			}
			if sum != total {
				r.add("wrong-total", "read via %s at %s: balances sum to %d, want %d (%v)", op.Node, fmtNanos(op.Complete), sum, total, op.Balances)
			}
		}
	}
	if ledger == nil || final == nil {
		r.add("no-final-read", "the history has no successful final ledger and balance read; nothing to replay")
		return r.finish()
	}
	seen := map[int64]int{}
	balances := make(map[int]int64, m.Accounts)
	for a := 1; a <= m.Accounts; a++ {
		balances[a] = m.Initial
	}
	for _, id := range ledger.Elements {
		seen[id]++
		t, ok := transfers[id]
		switch {
		case !ok:
			r.add("phantom-transfer", "ledger holds transfer %d that no client issued", id)
			continue
		case t.Outcome == Fail:
			r.add("aborted-transfer-visible", "transfer %d (%d→%d, %d) was refused (%s) but is in the ledger", id, t.From, t.To, t.Amount, t.Err)
		case seen[id] == 2:
			r.add("duplicated-transfer", "transfer %d is in the ledger more than once", id)
		}
		balances[t.From] -= t.Amount
		balances[t.To] += t.Amount
	}
	var ids []int64
	for id := range transfers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	unknownApplied := 0
	for _, id := range ids {
		t := transfers[id]
		if t.Outcome == OK && t.Applied && seen[id] == 0 {
			r.add("lost-transfer", "transfer %d (%d→%d, %d) was acknowledged via %s at %s but is not in the ledger", id, t.From, t.To, t.Amount, t.Node, fmtNanos(t.Complete))
		}
		if t.Outcome == Unknown && seen[id] > 0 {
			unknownApplied++
		}
	}
	for a := 1; a <= m.Accounts; a++ {
		if got := final.Balances[a]; got != balances[a] {
			r.add("ledger-mismatch", "account %d: final balance %d, ledger replay gives %d", a, got, balances[a])
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("ledger has %d transfers, %d of them with unknown outcome", len(ledger.Elements), unknownApplied))
	return r.finish()
}

func fmtNanos(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }
