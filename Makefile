# memcachedrep: `make` builds, `make run` starts a node in the foreground, `make test` runs
# every test, `make fmt` formats, `make lint` checks formatting and lints (as CI does), `make
# bench` compares against Debian's memcached, `make bench-replication` measures what a peer
# costs, `make soak`, `make fuzz` and `make check-memory` are the long checks the README
# describes, `make install` and `make uninstall` put the service in place (PREFIX, default
# /usr/local, and DESTDIR apply).

CARGO ?= cargo
BIN := target/release/memcachedrep
# memcached refuses to run as root without -u; a root shell gets -u root.
RUN_AS_ROOT := $(if $(filter 0,$(shell id -u)),-u root)

.PHONY: all build run test fmt lint bench bench-replication soak fuzz check-memory clean install uninstall

all: build

build:
	$(CARGO) build --release

run: build
	./$(BIN) -l 127.0.0.1 -p 11211 -vv $(RUN_AS_ROOT)

# The tests run in the checked profile (release with debug assertions and overflow checks).
# A test that cannot run here (a missing program, not root) passes with a SKIPPED line, so
# those lines are gathered and counted at the end; in CI such a test fails instead.
test:
	@skipped=$$(mktemp); \
	MEMCACHEDREP_SKIPPED=$$skipped $(CARGO) test --profile checked --no-fail-fast; status=$$?; \
	echo "$$(wc -l < $$skipped) tests skipped"; cat $$skipped; rm -f $$skipped; \
	exit $$status

# The workloads bench drives both servers with memtier_benchmark and skips its memtier rows
# when that is missing; tests/bench/build-memtier.sh builds and installs it.
bench:
	$(CARGO) bench --bench compare --bench workloads

# The house's formatting: long lines, one expression a line where it fits. Given here rather
# than in a rustfmt.toml, which the project's top level does not hold.
RUSTFMT_CONFIG := max_width=140,use_small_heuristics=Max

# `make fmt` formats the tree; `make lint` checks formatting and lints as .ci/run does.
fmt:
	$(CARGO) fmt -- --config $(RUSTFMT_CONFIG)

lint:
	$(CARGO) fmt --check -- --config $(RUSTFMT_CONFIG)
	$(CARGO) clippy --all-targets -- -D warnings

bench-replication:
	$(CARGO) bench --bench replication

# A pair under load with kill -9, SIGSTOP and link cuts for SOAK_SECONDS (default 600);
# SOAK_SEED repeats a run. Other long runs (the model test, through its env var) go on
# lines after the soak's.
soak:
	$(CARGO) test --release --test soak
	MODEL_SECONDS=$(or $(SOAK_SECONDS),600) $(CARGO) test --release --test model

# Each parser under cargo-fuzz (nightly) for FUZZ_SECONDS (default 60) per target; fails if
# any target crashes. A crash's input is kept in tests/fuzz/artifacts/TARGET/; replay it with
# "cargo +nightly fuzz run --fuzz-dir tests/fuzz TARGET FILE". The corpus a run grows stays in
# tests/fuzz/target/corpus/ for the next run; tests/fuzz/corpus/ holds the seeds.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := text meta binary replication repcached cmdline

fuzz:
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p tests/fuzz/target/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(CARGO) +nightly fuzz run --fuzz-dir tests/fuzz $$t tests/fuzz/target/corpus/$$t tests/fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/dict/$$t.dict -print_final_stats=1 || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed"; exit 1; fi

# The storage engine's unit and stress tests under Miri (nightly), then integration tests with
# every memcachedrep they start under valgrind memcheck (logs in target/memcheck/); fails on
# any error either reports, or on a failing test. MEMCHECK_TESTS names the integration test
# targets to run so; MEMCHECK_SKIP names tests left out there, whose checks valgrind's
# slowness or memory breaks: the RSS bound (it measures valgrind's shadow memory) and an incr
# answered by the peer within 500 ms. (Protocol tables compare meta TTLs loosely there.)
MEMCHECK_TESTS ?= text_protocol meta_protocol binary_protocol memory replication
MEMCHECK_SKIP ?= over_the_memory_limit_old_items_are_evicted_and_memory_stays_bounded \
	incr_of_a_key_the_peer_owns_answers_on_both_nodes
MEMCHECK_DIR := $(CURDIR)/target/memcheck
check-memory:
	MIRIFLAGS=-Zmiri-disable-isolation $(CARGO) +nightly miri test --lib storage::
	rm -rf $(MEMCHECK_DIR)
	MEMCACHEDREP_TEST_WRAPPER=$(CURDIR)/tests/valgrind/memcheck.sh MEMCHECK_DIR=$(MEMCHECK_DIR) \
		$(CARGO) test --release --no-fail-fast $(addprefix --test ,$(MEMCHECK_TESTS)) -- $(addprefix --skip ,$(MEMCHECK_SKIP)); \
		status=$$?; tests/valgrind/report.sh $(MEMCHECK_DIR) && exit $$status

clean:
	$(CARGO) clean

PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
MAN1DIR := $(PREFIX)/share/man/man1
# The init script and its defaults file live in /etc whatever PREFIX is, as Debian expects.
INITDIR := /etc/init.d
DEFAULTS := /etc/memcachedrep

# Built only when missing: install never runs cargo over a finished build, so it needs no
# network, and "sudo make install" leaves target/ to its owner.
$(BIN):
	$(CARGO) build --release

# The init script gets the installed binary's path; the defaults file is copied only when
# there is none, so an operator's edits survive a reinstall.
install: $(BIN)
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MAN1DIR)" "$(DESTDIR)$(INITDIR)"
	install -m 0755 $(BIN) "$(DESTDIR)$(BINDIR)/memcachedrep"
	install -m 0644 man/memcachedrep.1 "$(DESTDIR)$(MAN1DIR)/memcachedrep.1"
	sed 's|^DAEMON=.*|DAEMON=$(BINDIR)/memcachedrep|' init/memcachedrep > "$(DESTDIR)$(INITDIR)/memcachedrep.new"
	chmod 0755 "$(DESTDIR)$(INITDIR)/memcachedrep.new"
	mv -f "$(DESTDIR)$(INITDIR)/memcachedrep.new" "$(DESTDIR)$(INITDIR)/memcachedrep"
	if [ -e "$(DESTDIR)$(DEFAULTS)" ]; then \
		echo "$(DESTDIR)$(DEFAULTS) exists: kept as it is (the new one is init/memcachedrep.default)"; \
	else \
		install -m 0644 init/memcachedrep.default "$(DESTDIR)$(DEFAULTS)"; \
	fi

# Leaves the operator's $(DEFAULTS). With the service registered, stop it first and then run
# "update-rc.d memcachedrep remove".
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/memcachedrep" "$(DESTDIR)$(MAN1DIR)/memcachedrep.1" "$(DESTDIR)$(INITDIR)/memcachedrep"
