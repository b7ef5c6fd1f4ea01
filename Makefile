# QuorumDB build, test and benchmark targets. `make test` is the CI suite.
GO        ?= go
BIN       := bin/quorumdb
PKGS      := ./...
# Each test binary gets a hard deadline: a hang fails the build instead of CI.
TEST_TIMEOUT ?= 15m
CHAOS_TIME   ?= 30s

.PHONY: all build test test-race run bench bench-go lint fmt chaos clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/quorumdb

# The CI suite: every package's tests, including the short randomized and
# multi-node suites. Long suites have their own targets below.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The main job: a 3-node replicated cluster in one process (embedded etcd),
# SQL on 127.0.0.1:4000-4002, running the seed's bank example live.
run: build
	./$(BIN) demo --workload bank

# sysbench OLTP workloads against a 3-node local cluster and, when it can be
# installed, a local MariaDB; the table goes to bench/results/latest/.
BENCH_TESTS ?= oltp_point_select oltp_read_only oltp_read_write oltp_update_index oltp_insert
bench: build
	BENCH_SKIP_BUILD=1 BENCH_TESTS="$(BENCH_TESTS)" BENCH_OUT=$(CURDIR)/bench/results/latest scripts/bench.sh

# Go benchmarks of every layer; medians come from -count=5 (use benchstat).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count=5 $(PKGS)

# The long fault-tolerance suites: every chaos workload x nemesis against real
# node processes (CHAOS_TIME each; report in tests/chaos/results/), random
# transactions under node kills and partitions, and the porcupine-checked
# register workload on the Raft layer. Non-zero exit on any anomaly.
chaos: build
	CHAOS_TIME=$(CHAOS_TIME) $(GO) test -count=1 -timeout 6h ./tests/chaos/ -run TestChaosMatrix -chaos.full -chaos.time=$(CHAOS_TIME) -v
	$(GO) test -count=1 -timeout 1h ./tests/ -run TestTxnChaos -txn.chaos=$(CHAOS_TIME) -v
	$(GO) test -count=1 -timeout 1h ./raftgroup/ -run TestLinearizableRegistersUnderFaults -raftgroup.lin.time=$(CHAOS_TIME) -v

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
