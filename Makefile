# mailstead — see README.md.
GO ?= go

.PHONY: build test test-short bench fuzz run clean

build:
	$(GO) build -o bin/mailstead ./cmd/mailstead
	$(GO) build -o bin/mailstead-bench ./cmd/mailstead-bench
	$(GO) build -o bin/mailstead-imapbench ./cmd/mailstead-imapbench

# Everything: unit, conformance, fuzz seeds and end-to-end tests with real
# clients, under the race detector. CI runs this.
test:
	$(GO) test -race -timeout 30m ./...

# Quick loop for development: no race detector, no end-to-end tests.
test-short:
	$(GO) test -short ./...

# Run the embedded default (data in ./data, loopback ports, self-signed TLS).
run:
	$(GO) run ./cmd/mailstead serve

# Benchmarks of the running server (SMTP; scripts/imapbench.sh for IMAP);
# results go to docs/BENCHMARKS.md.
bench: build
	./scripts/bench.sh

# Each fuzz target for a short while.
fuzz:
	./scripts/fuzz.sh 30s

clean:
	rm -rf bin
