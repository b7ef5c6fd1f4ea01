package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quorumdb/quorumdb/tests/chaos/checker"
)

// RunConfig is one workload × nemesis run.
type RunConfig struct {
	Bin      string
	Dir      string // results directory of this run (created)
	Nodes    int
	Workload Workload
	Nemesis  Nemesis // nil: no faults
	Duration time.Duration
	Seed     uint64
	// WorkersPerNode is the number of client processes per node (default 2).
	WorkersPerNode int
	// Quiet and Hold bound the seeded schedule: between faults the cluster
	// is left alone for Quiet..2×Quiet, a fault lasts Hold..1.5×Hold.
	Quiet, Hold time.Duration
	// KeepData keeps the nodes' and etcd's data directories after the run
	// (by default only logs and reports stay: a run's data is hundreds of MB).
	KeepData bool
	Logger   *slog.Logger
}

// CatchUp is how long every replica took to apply what its leader had
// applied when a partition (or pause) healed.
type CatchUp struct {
	HealAt int64 `json:"heal_at_ns"`
	// Took is -1 when replicas had not caught up within the wait.
	Took int64  `json:"took_ns"`
	Note string `json:"note,omitempty"`
}

// Report is what a run writes to report.json.
type Report struct {
	Workload     string                             `json:"workload"`
	Nemesis      string                             `json:"nemesis"`
	Seed         uint64                             `json:"seed"`
	Nodes        int                                `json:"nodes"`
	Duration     string                             `json:"duration"`
	Network      string                             `json:"network"`
	Replicas     int                                `json:"min_replicas"`
	Schedule     []checker.Event                    `json:"schedule"`
	Counts       map[string]map[checker.Outcome]int `json:"counts"`
	Availability checker.Availability               `json:"availability"`
	CatchUps     []CatchUp                          `json:"catch_ups,omitempty"`
	Results      []checker.Result                   `json:"results"`
	HarnessError []string                           `json:"harness_errors,omitempty"`
	Valid        bool                               `json:"valid"`
	Dir          string                             `json:"dir"`
}

// Anomalies lists every anomaly of every checker.
func (r *Report) Anomalies() []string {
	var out []string
	for _, res := range r.Results {
		for _, a := range res.Anomalies {
			out = append(out, res.Checker+": "+a.String())
		}
	}
	return out
}

// Run starts a fresh cluster, runs the workload under the nemesis' seeded
// schedule for Duration, heals everything, takes final reads through
// every node, checks the history and writes report.json, history.json and
// summary.txt into Dir. The error is for a run that could not happen at all
// (cluster did not start, setup failed); anomalies are in the report.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	if cfg.WorkersPerNode == 0 {
		cfg.WorkersPerNode = 2
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 3 * time.Second
	}
	if cfg.Hold == 0 {
		cfg.Hold = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: results dir: %w", err)
	}
	rep := &Report{Workload: cfg.Workload.Name(), Nemesis: "none", Seed: cfg.Seed, Nodes: cfg.Nodes, Duration: cfg.Duration.String(), Dir: cfg.Dir}
	if cfg.Nemesis != nil {
		rep.Nemesis = cfg.Nemesis.Name()
	}
	if !cfg.KeepData {
		// Registered first, so it runs after the cluster's Close.
		defer removeDataDirs(cfg.Dir)
	}
	c, err := StartCluster(ctx, ClusterConfig{Bin: cfg.Bin, Dir: cfg.Dir, Nodes: cfg.Nodes, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep.Network = c.Mechanism()
	if cfg.Nemesis != nil && cfg.Nemesis.NeedsPartitions() && !c.CanPartition() {
		rep.HarnessError = append(rep.HarnessError, "skipped: "+ErrPartitionUnsupported.Error())
		rep.Valid = true
		return rep, writeReport(rep, nil)
	}

	// Schema through the first node, then handles to every node.
	admin, err := c.DB(c.Nodes[0], "")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := readAll(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS chaos")
		return err
	}); err != nil {
		return nil, fmt.Errorf("chaos: create database: %w", err)
	}
	clients := make([]Client, len(c.Nodes))
	for i, n := range c.Nodes {
		db, err := c.DB(n, "chaos")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		clients[i] = Client{Node: n.name, DB: db}
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cfg.Workload.Setup(setupCtx, clients[0].DB)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chaos: %s setup: %w", cfg.Workload.Name(), err)
	}
	// Replication: wait a while for the placement driver to up-replicate.
	want := min(3, cfg.Nodes)
	if err := c.WaitReplicated(ctx, want, 30*time.Second); err != nil {
		rep.HarnessError = append(rep.HarnessError, fmt.Sprintf("ranges not replicated %d ways before the run: %v", want, err))
	}
	if m, err := c.MinReplicas(ctx); err == nil {
		rep.Replicas = m
	}

	rec := NewRecorder()
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for p := 0; p < cfg.WorkersPerNode*len(clients); p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg.Workload.Worker(runCtx, rec, p, clients, rand.New(rand.NewPCG(cfg.Seed, uint64(p)+1)))
		}()
	}
	// A timeline of every node's view of the ranges (leader, applied
	// index), for diagnosing stalls: written to ranges.json.
	var timeline []rangeSample
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			timeline = append(timeline, c.sample(runCtx, rec.Now()))
		}
	}()
	var windows []checker.PartitionWindow
	var catchMu sync.Mutex
	var catchWG sync.WaitGroup
	if cfg.Nemesis != nil {
		rng := rand.New(rand.NewPCG(cfg.Seed, 0))
		sleep := func(d time.Duration) bool {
			select {
			case <-runCtx.Done():
				return false
			case <-time.After(d):
				return true
			}
		}
		end := time.Now().Add(cfg.Duration)
		for {
			quiet := cfg.Quiet + time.Duration(rng.Int64N(int64(cfg.Quiet)))
			hold := cfg.Hold + time.Duration(rng.Int64N(int64(cfg.Hold/2)))
			// Leave time to heal and recover before the end.
			if time.Until(end) < quiet+hold+cfg.Quiet || !sleep(quiet) {
				break
			}
			fctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			ev, heal, err := cfg.Nemesis.Fault(fctx, c, rng)
			cancel()
			if err != nil {
				rep.HarnessError = append(rep.HarnessError, fmt.Sprintf("%s at %s: %v", cfg.Nemesis.Name(), fmtDur(rec.Now()), err))
				continue
			}
			ev.At, ev.Phase = rec.Now(), "fault"
			rep.Schedule = append(rep.Schedule, ev)
			cfg.Logger.Info("fault", "kind", ev.Kind, "nodes", ev.Nodes, "detail", ev.Detail)
			sleep(hold)
			var target map[uint64]*RangeState
			measure := ev.Kind == "partition" || ev.Kind == "pause" || ev.Kind == "bridge"
			if measure {
				target, _ = c.Ranges(ctx)
			}
			// The heal's time is when it began: recovery is measured from
			// there (a restart's own start-up time counts as unavailability).
			healAt := rec.Now()
			hctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			err = heal(hctx)
			cancel()
			if err != nil {
				rep.HarnessError = append(rep.HarnessError, fmt.Sprintf("heal %s at %s: %v", ev.Kind, fmtDur(healAt), err))
			}
			rep.Schedule = append(rep.Schedule, checker.Event{At: healAt, Kind: ev.Kind, Phase: "heal", Nodes: ev.Nodes})
			if ev.Kind == "partition" {
				var major []string
				for _, n := range c.Nodes {
					if !contains(ev.Nodes, n.name) {
						major = append(major, n.name)
					}
				}
				windows = append(windows, checker.PartitionWindow{Start: ev.At, End: healAt, Minority: ev.Nodes, Majority: major})
			}
			if measure {
				catchWG.Add(1)
				go func() {
					defer catchWG.Done()
					cu := measureCatchUp(ctx, c, target, healAt, rec)
					catchMu.Lock()
					rep.CatchUps = append(rep.CatchUps, cu)
					catchMu.Unlock()
				}()
			}
		}
	}
	<-runCtx.Done()
	stopRun()
	wg.Wait()
	<-monitorDone
	if b, err := json.Marshal(timeline); err == nil {
		_ = os.WriteFile(filepath.Join(cfg.Dir, "ranges.json"), b, 0o644)
	}
	catchWG.Wait()
	runEnd := rec.Now()

	// Heal everything, bring every node back, then read the end state.
	_ = c.net.HealAll()
	if !c.etcd.running() {
		if err := c.StartEtcd(ctx); err != nil {
			rep.HarnessError = append(rep.HarnessError, "final etcd restart: "+err.Error())
		}
	}
	for _, n := range c.Nodes {
		_ = n.signal(syscall.SIGCONT)
		if !n.running() {
			if err := c.Restart(ctx, n); err != nil {
				rep.HarnessError = append(rep.HarnessError, "final restart: "+err.Error())
			}
		}
	}
	cfg.Workload.Final(ctx, rec, clients)

	ops := rec.Ops()
	rep.Counts = checker.Counts(ops)
	rep.Availability = checker.Gaps(ops, cfg.Workload.CommitFs(), rep.Schedule, runEnd)
	rep.Results = cfg.Workload.Check(ops)
	if len(windows) > 0 {
		if rep.Replicas >= 3 {
			rep.Results = append(rep.Results, checker.SplitBrain(ops, cfg.Workload.CommitFs(), windows, electionGrace, cfg.Workload.Visible(ops)))
		} else {
			rep.HarnessError = append(rep.HarnessError, fmt.Sprintf("split-brain check skipped: ranges have %d replica(s), so a partition leaves the data on one side only", rep.Replicas))
		}
	}
	sort.Slice(rep.CatchUps, func(a, b int) bool { return rep.CatchUps[a].HealAt < rep.CatchUps[b].HealAt })
	rep.Valid = len(rep.Anomalies()) == 0
	return rep, writeReport(rep, ops)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// measureCatchUp polls the nodes' ranges until every replica has applied
// what its leader had applied at the heal.
func measureCatchUp(ctx context.Context, c *Cluster, target map[uint64]*RangeState, healAt int64, rec *Recorder) CatchUp {
	cu := CatchUp{HealAt: healAt, Took: -1}
	if target == nil {
		cu.Note = "no range state before the heal"
		return cu
	}
	err := waitFor(ctx, 20*time.Second, func(ctx context.Context) error {
		now, err := c.Ranges(ctx)
		if err != nil {
			return err
		}
		if !caughtUp(now, target) {
			return fmt.Errorf("replicas behind")
		}
		return nil
	})
	if err != nil {
		cu.Note = err.Error()
		return cu
	}
	cu.Took = rec.Now() - healAt
	return cu
}

func fmtDur(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() }

// writeReport writes report.json, history.json and summary.txt.
func writeReport(rep *Report, ops []checker.Op) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("chaos: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rep.Dir, "report.json"), b, 0o644); err != nil {
		return fmt.Errorf("chaos: report: %w", err)
	}
	if ops != nil {
		h, err := json.Marshal(ops)
		if err != nil {
			return fmt.Errorf("chaos: history: %w", err)
		}
		if err := os.WriteFile(filepath.Join(rep.Dir, "history.json"), h, 0o644); err != nil {
			return fmt.Errorf("chaos: history: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(rep.Dir, "summary.txt"), []byte(rep.Summary()), 0o644)
}

// Summary renders the report for people.
func (r *Report) Summary() string {
	var b strings.Builder
	verdict := "VALID"
	if !r.Valid {
		verdict = "ANOMALIES FOUND"
	}
	fmt.Fprintf(&b, "%s × %s: %s\n", r.Workload, r.Nemesis, verdict)
	fmt.Fprintf(&b, "  %d nodes, %s, seed %d, ranges with %d replica(s)\n  network: %s\n", r.Nodes, r.Duration, r.Seed, r.Replicas, r.Network)
	var fs []string
	for f := range r.Counts {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	for _, f := range fs {
		m := r.Counts[f]
		fmt.Fprintf(&b, "  ops %-9s ok %5d  fail %5d  unknown %5d\n", f, m[checker.OK], m[checker.Fail], m[checker.Unknown])
	}
	fmt.Fprintf(&b, "  commits %d; longest gap without a commit %s (from %s)\n", r.Availability.Commits, fmtDur(r.Availability.LongestGap), fmtDur(r.Availability.LongestGapStart))
	for _, e := range r.Availability.Events {
		after := "none before the end"
		if e.FirstCommitAfter >= 0 {
			after = fmtDur(e.FirstCommitAfter)
		}
		fmt.Fprintf(&b, "  %8s %-6s %-16s %v %s → first commit after: %s\n", fmtDur(e.Event.At), e.Event.Phase, e.Event.Kind, e.Event.Nodes, e.Event.Detail, after)
	}
	for _, cu := range r.CatchUps {
		took := "not within 20s: " + cu.Note
		if cu.Took >= 0 {
			took = fmtDur(cu.Took)
		}
		fmt.Fprintf(&b, "  heal at %s: replicas caught up in %s\n", fmtDur(cu.HealAt), took)
	}
	for _, res := range r.Results {
		for _, line := range strings.Split(strings.TrimRight(res.Summary(), "\n"), "\n") {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	for _, e := range r.HarnessError {
		fmt.Fprintf(&b, "  harness: %s\n", e)
	}
	fmt.Fprintf(&b, "  files: %s\n", r.Dir)
	return b.String()
}

// electionGrace is how long a partition may stop commits on its majority
// side before that counts as unavailability: Raft elections (1 s timeout at
// the default 100 ms tick, randomized up to 2 s) plus the clients' retries.
const electionGrace = 4 * time.Second

// MatrixSummary renders one line per run: verdict, operations, the longest
// time without a commit, the slowest recovery after a fault or heal, the
// slowest replica catch-up, and the anomaly kinds found.
func MatrixSummary(reports []*Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-19s %-8s %7s %6s %7s %9s %12s %10s  %s\n", "workload", "nemesis", "verdict", "ok", "fail", "unknown", "max gap", "max recovery", "catch-up", "anomalies")
	for _, r := range reports {
		if r == nil {
			continue
		}
		var ok, fail, unknown int
		for _, m := range r.Counts {
			ok += m[checker.OK]
			fail += m[checker.Fail]
			unknown += m[checker.Unknown]
		}
		recovery := "-"
		var worst int64 = -2
		for _, e := range r.Availability.Events {
			if e.FirstCommitAfter < 0 {
				worst = -1
				break
			}
			worst = max(worst, e.FirstCommitAfter)
		}
		switch {
		case worst == -1:
			recovery = "none"
		case worst >= 0:
			recovery = fmtDur(worst)
		}
		catch := "-"
		var slowest int64 = -2
		for _, cu := range r.CatchUps {
			if cu.Took < 0 {
				slowest = -1
				break
			}
			slowest = max(slowest, cu.Took)
		}
		switch {
		case slowest == -1:
			catch = ">20s"
		case slowest >= 0:
			catch = fmtDur(slowest)
		}
		verdict := "valid"
		if !r.Valid {
			verdict = "INVALID"
		}
		kinds := map[string]bool{}
		var list []string
		for _, res := range r.Results {
			for _, a := range res.Anomalies {
				if !kinds[a.Kind] {
					kinds[a.Kind] = true
					list = append(list, a.Kind)
				}
			}
		}
		for _, e := range r.HarnessError {
			if strings.HasPrefix(e, "skipped: ") {
				verdict = "skipped"
			}
		}
		fmt.Fprintf(&b, "%-12s %-19s %-8s %7d %6d %7d %9s %12s %10s  %s\n", r.Workload, r.Nemesis, verdict, ok, fail, unknown,
			fmtDur(r.Availability.LongestGap), recovery, catch, strings.Join(list, ","))
	}
	return b.String()
}

// removeDataDirs deletes the data directories of a run (etcd and n*),
// keeping its logs and reports.
func removeDataDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && (e.Name() == "etcd" || strings.HasPrefix(e.Name(), "n")) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
