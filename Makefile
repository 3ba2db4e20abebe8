# Entry points for people and CI. `make test` works on a fresh Debian 12 machine:
# it installs what is missing, builds, and runs every test.
BUILD ?= build
JOBS ?= $(shell nproc)
DEB_PACKAGES = build-essential cmake libboost-dev libboost-filesystem-dev libsqlitecpp-dev \
               libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev sqlite3 python3

.PHONY: all deps build test demo sanitize clean

all: build

# Installs the Debian packages that are missing (needs root or sudo).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DRUNNER_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)

# Builds runner and runs the example migration over a few hundred clusters.
demo: build
	examples/demo.sh $(BUILD)/runner

clean:
	rm -rf $(BUILD) $(BUILD)-asan
