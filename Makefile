# memcachedrep: `make` builds, `make run` starts a node in the foreground, `make test` runs
# every test, `make bench` compares against Debian's memcached, `make bench-replication`
# measures what a peer costs, `make install` and `make uninstall` put the service in place
# (PREFIX, default /usr/local, and DESTDIR apply).

CARGO ?= cargo
BIN := target/release/memcachedrep
# memcached refuses to run as root without -u; a root shell gets -u root.
RUN_AS_ROOT := $(if $(filter 0,$(shell id -u)),-u root)

.PHONY: all build run test bench bench-replication soak clean install uninstall

all: build

build:
	$(CARGO) build --release

run: build
	./$(BIN) -l 127.0.0.1 -p 11211 -vv $(RUN_AS_ROOT)

test:
	$(CARGO) test --release

# The workloads bench drives both servers with memtier_benchmark and skips its memtier rows
# when that is missing; tests/bench/build-memtier.sh builds and installs it.
bench:
	$(CARGO) bench --bench compare --bench workloads

bench-replication:
	$(CARGO) bench --bench replication

# A pair under load with kill -9, SIGSTOP and link cuts for SOAK_SECONDS (default 600);
# SOAK_SEED repeats a run. Other long runs (the model test, through its env var) go on
# lines after the soak's.
soak:
	$(CARGO) test --release --test soak
	MODEL_SECONDS=$(or $(SOAK_SECONDS),600) $(CARGO) test --release --test model

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
