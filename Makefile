# capOS PKI image. Real logic lives in tools/ and image/; recipes stay short.
PY := .venv/bin/python

.PHONY: help setup run test test-host bench lint manifest image
help:
	@echo "make run        set up, build, boot the image and report"
	@echo "make test       set up and run every test, VM tests included"
	@echo "make test-host  host-only tests (no QEMU)"
	@echo "make bench      print the benchmark figures"
	@echo "make manifest   build and sign build/manifest.bin"
	@echo "make image      build the initramfs and kernel into build/image"
	@echo "make lint       ruff and mypy"

setup:
	@python3 tools/setup.py

run: setup
	$(PY) -m tools.run

test: setup
	$(PY) -m pytest

test-host: setup
	$(PY) -m pytest -m "not vm"

bench: setup
	$(PY) -m tools.bench

manifest: setup
	$(PY) -m tools.build --manifest-only

image: setup
	$(PY) -m tools.build

lint: setup
	$(PY) -m ruff check . && $(PY) -m mypy services bootmanifest image tools
