# Entry points for people and CI. On a fresh Debian 12 machine `make demo` and
# `make test` install what is missing (apt-get, as root or through sudo).
BUILD ?= build
JOBS ?= $(shell nproc)
# What runner is built from; then what its tests and the demo need besides.
BUILD_PACKAGES = build-essential cmake libboost-dev libboost-filesystem-dev libsqlitecpp-dev \
                 libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
DEB_PACKAGES = $(BUILD_PACKAGES) libgtest-dev sqlite3 python3
# What only the tests need: the test Slurm, Chromium for the report page,
# systemd-analyze for the unit examples, man and mandoc for the man page,
# lintian for the .deb, bash-completion for the completion, sshd, ssh and ip
# for the test hosts of --on ssh, and parallel.
TEST_PACKAGES = slurm-wlm munge chromium systemd man-db mandoc lintian bash-completion \
                openssh-server openssh-client iproute2 parallel
# What a .deb is built with: dpkg-buildflags and dpkg-shlibdeps, and file for CPack.
PACKAGE_PACKAGES = dpkg-dev file
# promtool, node_exporter and a Prometheus server for the metrics test (their
# recommended exporters and collectors are not needed).
PROMETHEUS_PACKAGES = prometheus prometheus-node-exporter
LINT_PACKAGES = clang-tidy clang-format
# The cgroup v2 guest: qemu (without the recommended desktop packages),
# busybox for its initramfs; its kernel comes from Debian's linux-image.
VM_PACKAGES = qemu-system-x86 busybox-static cpio

.PHONY: all build-deps deps test-deps build runner test unit sanitize vm-test torture lint demo bench bench-slurm bench-slurm-million bench-slurm-nodes bench-head bench-ssh bench-ssh-fit install package package-check clean

all: build

# Installs start no service: where the machine has no policy-rc.d of its own,
# one that forbids every start (exit 101) stands for the time of the install,
# so that no sshd, munged, slurmctld or Prometheus of the system's is left
# running (the tests start their own).
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  policy=/usr/sbin/policy-rc.d; \
	  if [ ! -e $$policy ]; then \
	    trap "$$SUDO rm -f $$policy" EXIT; trap 'exit 1' HUP INT TERM; \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$policy >/dev/null && $$SUDO chmod 755 $$policy; \
	  fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(2) $$missing >/dev/null; \
	fi
endef

build-deps:
	$(call install_missing,$(BUILD_PACKAGES))

deps:
	$(call install_missing,$(DEB_PACKAGES))

test-deps: deps
	$(call install_missing,$(TEST_PACKAGES))
	$(call install_missing,$(PROMETHEUS_PACKAGES),--no-install-recommends)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# runner alone, without the test programs: all that the demo needs.
runner: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target runner

# Every test, in the normal build and again under ASan + UBSan; the memory
# tests again on a real cgroup v2 kernel; then the .deb is built, installed,
# tried and removed.
test: unit sanitize vm-test package-check

PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# A .deb of runner (cpack), depending on the Debian runtime packages: a build
# of its own, without the tests, with Debian's hardening flags.
# MAINTAINER="Name <address>" names who answers for the package.
PACKAGE_BUILD = $(BUILD)-deb
HARDENING = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
MAINTAINER ?=
package: build-deps
	$(call install_missing,$(PACKAGE_PACKAGES))
	CFLAGS="$$($(HARDENING) CFLAGS) $$($(HARDENING) CPPFLAGS)" \
	CXXFLAGS="$$($(HARDENING) CXXFLAGS) $$($(HARDENING) CPPFLAGS)" \
	LDFLAGS="$$($(HARDENING) LDFLAGS)" \
	  cmake -S . -B $(PACKAGE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNNER_TESTS=OFF \
	  $(if $(MAINTAINER),"-DRUNNER_MAINTAINER=$(MAINTAINER)") >/dev/null
	cmake --build $(PACKAGE_BUILD) -j $(JOBS) --target runner man-page
	cd $(PACKAGE_BUILD) && cpack -G DEB >/dev/null
	@ls $(PACKAGE_BUILD)/runner_*.deb

# The .deb passes lintian (no error, no warning, and none of the hardening
# tags, which lintian only counts as information), installs, works, and goes.
HARDENING_TAGS = hardening-no-bindnow,hardening-no-fortify-functions,hardening-no-pie,hardening-no-relro
package-check: package test-deps
	lintian --fail-on error,warning $(PACKAGE_BUILD)/runner_*.deb
	lintian --fail-on error,warning,info --tags $(HARDENING_TAGS) $(PACKAGE_BUILD)/runner_*.deb
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get install -y -qq ./$(PACKAGE_BUILD)/runner_*.deb >/dev/null && \
	/usr/bin/runner --version && man -w runner && \
	test -f /usr/share/bash-completion/completions/runner && \
	test -f /usr/share/doc/runner/examples/cron/crontab; rc=$$?; \
	$$SUDO apt-get remove -y -qq runner >/dev/null; \
	if dpkg-query -W -f='$${Status}' runner 2>/dev/null | grep -q 'install ok'; then echo "runner is still installed"; rc=1; fi; \
	exit $$rc

# Skipped tests say why; the reasons are printed after the run.
unit: build test-deps
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	tests/no_leftovers.sh $(BUILD)
	@grep -A1 ': Skipped$$' $(BUILD)/Testing/Temporary/LastTest.log | grep -v -e '^--$$' -e ': Skipped$$' \
	  | sed 's/^/skipped: /' || true

sanitize: test-deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DRUNNER_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)
	tests/no_leftovers.sh $(BUILD)-asan
	@grep -A1 ': Skipped$$' $(BUILD)-asan/Testing/Temporary/LastTest.log | grep -v -e '^--$$' -e ': Skipped$$' \
	  | sed 's/^/skipped: /' || true

# runner's memory tests on cgroup v2: Debian 12's kernel under qemu (no KVM
# needed), from the root cgroup, a delegated one, a user's own subtree, and a
# user's session without one; ends "N passed, N failed". About 3 minutes.
vm-test: build
	$(call install_missing,$(VM_PACKAGES),--no-install-recommends)
	tests/v2vm/vm.sh run $(BUILD)/v2vm tests/v2vm/memory-tests.sh $(BUILD) $(BUILD)/v2vm/out

# The crash test at length (not part of make test): CUTS cuts of each kind
# under load, in the normal build and in the ASan build. About 40 minutes.
CUTS ?= 400
torture: build
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DRUNNER_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS) --target e2e_tests runner test_child
	tests/torture.sh $(BUILD) $(CUTS)
	tests/torture.sh $(BUILD)-asan $(CUTS)

# clang-format must agree with the tree, and clang-tidy's listed checks must pass.
lint: build
	$(call install_missing,$(LINT_PACKAGES))
	clang-format --dry-run --Werror src/*/*.cpp src/*/*.h include/runner/*.h tests/*.cpp tests/*.h
	clang-tidy -p $(BUILD) --quiet src/*/*.cpp

# The benchmark suite (not part of make test): a Release build, then every
# scenario several times; figures go to BENCHMARKS.md's latest run.
BENCH_ARGS ?=
bench: deps
	$(call install_missing,parallel time)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner test_child bench-floor
	python3 bench/bench.py $(BENCH_ARGS) --out bench/latest.md

# Dispatch over the 3-node test Slurm (not part of make test; about 6 minutes).
bench-slurm: test-deps
	$(call install_missing,parallel time)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner
	tests/slurm/cluster.sh start build-release/slurm-cluster
	SLURM_CONF=$(CURDIR)/build-release/slurm-cluster/slurm.conf bench/slurm.sh build-release/runner; \
	  rc=$$?; tests/slurm/cluster.sh stop build-release/slurm-cluster; exit $$rc

# Dispatch over the 3 SSH test hosts against GNU parallel --sshlogin (not
# part of make test). SSH_N clusters, SSH_ROUNDS rounds.
SSH_N ?= 10000
SSH_ROUNDS ?= 3
bench-ssh: test-deps
	$(call install_missing,parallel time)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner
	bench/ssh.sh build-release/runner build-release/ssh-hosts $(SSH_N) $(SSH_ROUNDS)

# Large clusters that fit only one of the 3 SSH test hosts, held to memory
# limits of their own, against GNU parallel --sshlogin (not part of make
# test; about 3 minutes). FIT_N clusters.
FIT_N ?= 48
bench-ssh-fit: test-deps
	$(call install_missing,parallel time sqlite3)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner test_child
	bench/ssh-fit.sh build-release/runner build-release/tests/test_child build-release/ssh-fit-hosts $(FIT_N)

# The head as the allocation grows: the same job on 1, 4 and 16 nodes of a
# 16-node test Slurm (not part of make test; about 5 minutes).
NODES_N ?= 20000
bench-slurm-nodes: test-deps
	$(call install_missing,time sqlite3)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner
	SLURM_NODES=16 tests/slurm/cluster.sh start build-release/slurm-cluster-16
	SLURM_CONF=$(CURDIR)/build-release/slurm-cluster-16/slurm.conf bench/slurm-nodes.sh build-release/runner $(NODES_N); \
	  rc=$$?; tests/slurm/cluster.sh stop build-release/slurm-cluster-16; exit $$rc

# The head's ceiling: the real scheduler and log against attempts that cost
# nothing, in this process and through null workers (not part of make test;
# about 3 minutes).
bench-head: deps
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target bench-head
	bench/head.sh build-release/bench-head

# 1,000,000 clusters in one allocation of the test Slurm (about 15 minutes).
bench-slurm-million: test-deps
	$(call install_missing,time)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-release -j $(JOBS) --target runner
	tests/slurm/cluster.sh start build-release/slurm-cluster
	SLURM_CONF=$(CURDIR)/build-release/slurm-cluster/slurm.conf bench/slurm-million.sh build-release/runner; \
	  rc=$$?; tests/slurm/cluster.sh stop build-release/slurm-cluster; exit $$rc

# Builds runner (only) and runs the example migration over 300 clusters.
demo: runner
	examples/demo.sh $(BUILD)/runner

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-deb build-release demo
