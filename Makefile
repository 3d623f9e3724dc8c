# memcachedrep: `make` builds, `make run` starts a node in the foreground, `make test` runs
# every test, `make bench` compares against Debian's memcached, `make bench-replication`
# measures what a peer costs.

CARGO ?= cargo
BIN := target/release/memcachedrep
# memcached refuses to run as root without -u; a root shell gets -u root.
RUN_AS_ROOT := $(if $(filter 0,$(shell id -u)),-u root)

.PHONY: all build run test bench bench-replication clean

all: build

build:
	$(CARGO) build --release

run: build
	./$(BIN) -l 127.0.0.1 -p 11211 -vv $(RUN_AS_ROOT)

test:
	$(CARGO) test --release

bench:
	$(CARGO) bench --bench compare

bench-replication:
	$(CARGO) bench --bench replication

clean:
	$(CARGO) clean
