package checker

import "fmt"

// Withdrawals checks rounds of the seed's example: an account starts at
// Start (15 EUR) and two clients, through two nodes, each try once to
// withdraw Amount (10 EUR) with a read-check-write transaction. Ops:
// "withdraw" (ID = round; ok with Applied when it took the money, ok
// without when it saw too little) and "balance" (ID = round, Value = the
// balance read after both finished). Never may both succeed, the balance
// never go negative, and it must equal Start minus the withdrawals that
// committed (at least the ok ones, at most ok plus unknown).
func Withdrawals(start, amount int64, ops []Op) Result {
	r := Result{Checker: "withdrawals"}
	type round struct {
		ok, unknown int
		balance     *int64
	}
	rounds := map[int64]*round{}
	get := func(id int64) *round {
		if rounds[id] == nil {
			rounds[id] = &round{}
		}
		return rounds[id]
	}
	for _, op := range ops {
		switch {
		case op.F == "withdraw" && op.Outcome == OK && op.Applied:
			get(op.ID).ok++
		case op.F == "withdraw" && op.Outcome == Unknown:
			get(op.ID).unknown++
		case op.F == "balance" && op.Outcome == OK:
			v := op.Value
			get(op.ID).balance = &v
		}
	}
	checked := 0
	for id, rd := range rounds {
		if rd.ok > 1 {
			r.add("double-withdrawal", "round %d: both withdrawals of %d from %d succeeded", id, amount, start)
		}
		if rd.balance == nil {
			continue
		}
		checked++
		b := *rd.balance
		if b < 0 {
			r.add("overdraft", "round %d: balance %d", id, b)
			continue
		}
		if (start-b)%amount != 0 {
			r.add("wrong-balance", "round %d: balance %d is not %d minus whole withdrawals", id, b, start)
			continue
		}
		k := int((start - b) / amount)
		if k < rd.ok || k > rd.ok+rd.unknown {
			r.add("wrong-balance", "round %d: balance %d means %d withdrawals committed, but %d were acknowledged and %d unknown", id, b, k, rd.ok, rd.unknown)
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d rounds, %d with a final balance read", len(rounds), checked))
	return r.finish()
}
