# LatentDiffusion — build, test and generate.
#   make setup        install the C libraries (libpng, OpenBLAS, FreeType, HarfBuzz, pkg-config) and the
#                     emoji dataset's font and names (fonts-noto-color-emoji, unicode-data) when missing
#   make build        release build of `ldm`
#   make test         the whole test suite (optimised build, @testable kept)
#   make image        generate an image with the shipped model (PROMPT=..., OUT=...)
#   make checkpoints  retrain the shipped model from scratch (hours; see Checkpoints/README.md)
#   make test-web     drive `ldm serve`'s web page in headless Chromium (installs chromium,
#                     chromium-driver and, in .build/web-venv, selenium; not part of `make test`)

SWIFT     ?= swift
PACKAGES  := libpng-dev libopenblas-dev pkg-config libfreetype-dev libharfbuzz-dev fonts-noto-color-emoji unicode-data libsqlite3-dev
PROMPT    ?= a red circle above a blue square
OUT       ?= image.png
LDM       := .build/release/ldm

.PHONY: setup build test image checkpoints clean test-web

setup:
	@missing=""; \
	for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != "0" ]; then \
	    echo "make setup: missing packages:$$missing — run as root or: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	  echo "make setup: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: setup
	$(SWIFT) build -c release --product ldm

test: setup
	$(SWIFT) test -c release -Xswiftc -enable-testing

image: build
	$(LDM) txt2img --prompt "$(PROMPT)" --output "$(OUT)"

checkpoints: build
	scripts/train-default-model.sh

WEB_VENV := .build/web-venv

test-web: build
	@missing=""; for p in chromium chromium-driver python3-venv; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != "0" ]; then echo "make test-web: missing packages:$$missing — sudo apt-get install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@[ -x $(WEB_VENV)/bin/python ] || (python3 -m venv $(WEB_VENV) && $(WEB_VENV)/bin/pip install -q selenium)
	$(WEB_VENV)/bin/python scripts/test_web.py $(LDM)

clean:
	rm -rf .build
