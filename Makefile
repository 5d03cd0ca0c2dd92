# The two commands of README.md, and the steps they are made of.
# Every target that builds or tests first runs scripts/setup.sh, which is idempotent and quick when done.

SWIFT ?= swift
BUILD_FLAGS ?=
BIN := .build/debug

.PHONY: run test setup build release install release-smoke image check unit fixtures clean kernel-b fuzz fuzz-smoke load-test \
	load-smoke

## Set up what is missing, build, and run the daemon in the foreground on its default sockets.
run: setup build
	$(BIN)/bpfman serve

## Set up what is missing, build, and run every test suite; non-zero exit on any failure. The container image is
## built before the unit suites, which run it under podman (DaemonKernelTests.Container).
test: setup check build fixtures image unit kernel-b release-smoke fuzz-smoke load-smoke

setup:
	bash scripts/setup.sh

## Build the package. The XDP/TC dispatchers are in the bpfman executable itself (EmbeddedDispatchers.swift,
## generated from bpf/*.bpf.c by scripts/embed-dispatchers.sh and committed); nothing is needed beside it.
build:
	$(SWIFT) build $(BUILD_FLAGS)

## The daemon as it ships: release build with the Swift runtime and FoundationEssentials linked in
## (--static-swift-stdlib; about 40% less start-up and 20% less RSS than the dynamic build, README
## "BpfmanServer"), linked by lld with the daemon's functions first (packaging/bpfman.order, Package.swift).
## One file is the whole install: install -m 755 .build/release/bpfman /usr/sbin/
## The daemon runs that same file as its image fetcher (argv[0] bpfman-image, libcurl opened with dlopen there
## only) and as its container_pid helper (argv[0] bpfman-ns); the dispatchers are embedded in it.
## Also its man page, .build/release/bpfman.8, generated from the command definitions by swift-argument-parser's
## generate-manual (dated by the last commit, so reproducible): install -m 644 .build/release/bpfman.8
## /usr/share/man/man8/
release: setup
	$(SWIFT) build -c release --static-swift-stdlib --product bpfman
	$(SWIFT) build --product generate-manual
	.build/debug/generate-manual .build/release/bpfman --section 8 --date $$(git log -1 --format=%cs) \
		--output-directory .build/release

## Installs the release build, its man page and its bash, zsh and fish completions under $(DESTDIR)$(PREFIX)
## (scripts/install.sh; PREFIX defaults to /usr/local, a package sets DESTDIR and PREFIX=/usr).
install: release
	bash scripts/install.sh

## The release build driven end to end by its own CLI against a real kernel (scripts/release-smoke.sh).
release-smoke: release fixtures
	bash scripts/release-smoke.sh

## The container image bpfman-operator deploys as the daemon (SPEC §1.10, README "Kubernetes"): the release
## executables stripped, the Debian libraries they load and the CA bundle, written without a container engine as
## a reproducible OCI archive, .build/bpfman-image.tar, tagged bpfman:<version> (scripts/build-image.sh).
image: release
	bash scripts/build-image.sh

## Static checks: formatting (.swift-format, STYLE.md 24), the module graph, the proto contract against
## reference-proto, fresh generated code, and the embedded dispatchers: the bytes in EmbeddedDispatchers.swift
## are what the toolchain's clang (the version recorded there) makes of bpf/*.bpf.c.
## `swift format -i -r Sources Tests Package.swift` fixes the first; `bash scripts/embed-dispatchers.sh` the last.
check:
	$(SWIFT) format lint --strict -r Sources Tests Fuzz Package.swift
	bash scripts/check-imports.sh
	bash scripts/check-proto-contract.sh
	bash scripts/check-generated.sh
	bash scripts/embed-dispatchers.sh --check

## eBPF objects the tests load, compiled from Tests/Fixtures/bpf/*.bpf.c.
fixtures:
	bash scripts/build-fixtures.sh

## Unit and kernel-A tests (swift test). Kernel tests need root; without it they are skipped with a reason.
## --no-parallel: many tests run a real client process against an in-process server and wait for it; run side
## by side on a 2-core machine those waits can occupy every thread of Swift's cooperative pool, starving the
## server's handlers until the clients time out. One test at a time keeps every wait short and deterministic.
unit: build
	$(SWIFT) test --no-parallel $(BUILD_FLAGS)

## Kernel-B tests: every suite whose name ends in KernelB, run inside Debian's stock kernel under qemu
## (scripts/run-kernel-b.sh; the first run downloads the kernel package into .cache/kernel-b).
## The daemon stress (StressKernelB, about 2 minutes) boots a guest of its own: run beside the other suites, the
## 6.1 guest under TCG once locked up in the kernel (soft lockups on both CPUs, an `ip` and a test thread, until
## the lane's timeout).
kernel-b: setup
	bash scripts/run-kernel-b.sh KernelB --skip StressKernelB
	KERNEL_B_NO_BUILD=1 KERNEL_B_TIMEOUT=1200 bash scripts/run-kernel-b.sh StressKernelB

## Fuzzing (Fuzz/README.md): every libFuzzer target (built with -sanitize=fuzzer,address into .build-fuzz, release)
## for FUZZ_SECONDS each from its committed seeds, then the daemon load test. Non-zero exit on any crash, leak,
## time-out or memory cap; the input is kept under .build-fuzz/artifacts. FUZZ_NICE=1 runs them at nice 19.
FUZZ_SECONDS ?= 60
fuzz: setup build
	bash scripts/fuzz.sh build
	bash scripts/fuzz.sh replay
	bash scripts/fuzz.sh run $(FUZZ_SECONDS)
	bash scripts/load-test.sh

## What `make test` runs of the above: the same build, every committed seed and crash input replayed, and each target
## fuzzed for FUZZ_SMOKE_SECONDS. (A debug build would be quicker to make, but in it libFuzzer sees almost none of
## the modules' coverage: 7 edges for fuzz-proto against 25,000 in release.)
FUZZ_SMOKE_SECONDS ?= 5
fuzz-smoke: setup
	bash scripts/fuzz.sh build
	bash scripts/fuzz.sh replay
	bash scripts/fuzz.sh run $(FUZZ_SMOKE_SECONDS)

## The daemon as a process under hostile load (scripts/load-test.sh): idle and garbage connections, random frames,
## oversized messages, 64 concurrent callers; prints RSS and open fds before, during and after.
load-test: setup build
	bash scripts/load-test.sh

## The load test at a size for `make test` (about half a minute).
load-smoke: setup build
	bash scripts/load-test.sh --idle 1200 --garbage 500 --frames 200 --seconds 3

clean:
	rm -rf .build .build-* .venv
