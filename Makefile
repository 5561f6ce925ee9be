# LatentDiffusion — build, test and generate.
#   make setup        install the C libraries (libpng, OpenBLAS, oneDNN, FreeType, HarfBuzz, pkg-config) and the
#                     emoji dataset's font and names (fonts-noto-color-emoji, unicode-data) when missing
#   make build        release build of `ldm`
#   make build-mpi    an MPI-enabled `ldm` at .build-mpi/release/ldm for data-parallel training
#                     (installs Open MPI when missing; see docs/scale-out.md)
#   make test         the whole test suite (optimised build, @testable kept)
#   make image        generate an image with the shipped model (PROMPT=..., OUT=...)
#   make checkpoints  retrain the shipped model from scratch (hours; see Checkpoints/README.md)
#   make fuzz         build the libFuzzer harnesses (AddressSanitizer) and run each FUZZ_SECONDS (30)
#                     or FUZZ_RUNS executions on its corpus (.build-fuzz/corpus/NAME, seeded from the
#                     test fixtures); FUZZ_TARGETS="png http" picks harnesses
#   make test-web     drive `ldm serve`'s web page in headless Chromium (installs chromium,
#                     chromium-driver and, in .build/web-venv, selenium; not part of `make test`)

SWIFT     ?= swift
PACKAGES  := libpng-dev libopenblas-dev pkg-config libfreetype-dev libharfbuzz-dev fonts-noto-color-emoji unicode-data libsqlite3-dev libdnnl-dev
PROMPT    ?= a red circle above a blue square
OUT       ?= image.png
MPI_PACKAGES := openmpi-bin libopenmpi-dev
LDM       := .build/release/ldm

.PHONY: setup build build-mpi test image checkpoints clean test-web fuzz fuzz-build

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

# The default build stays MPI-free; this one has the MPI trait, in its own build folder.
build-mpi: setup
	@missing=""; for p in $(MPI_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != "0" ]; then echo "make build-mpi: missing packages:$$missing — sudo apt-get install$$missing" >&2; exit 1; fi; \
	  echo "make build-mpi: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(SWIFT) build -c release --product ldm --traits MPI --scratch-path .build-mpi

# (The MPI training tests run when .build-mpi/release/ldm exists: CI builds it first.)
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

FUZZ_SECONDS ?= 30
# FUZZ_RUNS=N runs each harness for N executions instead of FUZZ_SECONDS.
FUZZ_RUNS    ?=
# release (the long runs: numeric code at speed) or debug (quick to build: CI's short run).
FUZZ_CONFIG  ?= release
FUZZ_TARGETS ?= prompt tokenizer safetensors png ckpt config embedding lora request http
FUZZ_DIR     := .build-fuzz
# Seeds per harness: files from the test fixtures (libFuzzer reads every file in these folders).
SEEDS_prompt      := Tests/Fixtures/fuzz/prompt
SEEDS_tokenizer   := Tests/Fixtures/fuzz/prompt
SEEDS_safetensors := Tests/Fixtures/lora Tests/Fixtures/prompts
SEEDS_png         := Tests/Fixtures/pipelines Tests/LDMIOTests/Fixtures/png
SEEDS_ckpt        := Tests/LDMIOTests/Fixtures/ckpt
SEEDS_config      := Tests/Fixtures/models/tiny-sd/unet Tests/Fixtures/models/tiny-sd/vae Tests/Fixtures/models/tiny-sd/text_encoder
SEEDS_embedding   := Tests/Fixtures/prompts
SEEDS_lora        := Tests/Fixtures/lora
SEEDS_request     := Tests/Fixtures/fuzz/request
SEEDS_http        := Tests/Fixtures/fuzz/http
# Dictionaries (Fuzz/dictionaries): tokens the mutator splices in.
DICT_safetensors  := json
DICT_config       := json
DICT_embedding    := json
DICT_lora         := json
DICT_request      := json
DICT_png          := png
DICT_http         := http
# The http harness's server allocates on its own threads, across inputs: a leak check after each
# input (LSan's whole-heap scan) would report nothing meaningful and costs ~15 ms per input.
OPTS_http         := -detect_leaks=0
FUZZ_LENGTH = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))

# One harness: run it, keep its log, show the last stats lines; a crash fails the target.
define fuzz-one
mkdir -p $(FUZZ_DIR)/corpus/$(1) && echo "== fuzz $(1) ($(FUZZ_LENGTH))" && \
SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$(1) $(FUZZ_DIR)/$(FUZZ_CONFIG)/ldm-fuzz $(FUZZ_DIR)/corpus/$(1) $(wildcard $(SEEDS_$(1))) $(FUZZ_LENGTH) \
  $(if $(DICT_$(1)),-dict=Fuzz/dictionaries/$(DICT_$(1)).dict) $(OPTS_$(1)) \
  -rss_limit_mb=4096 -timeout=30 -artifact_prefix=$(FUZZ_DIR)/crash-$(1)- -print_final_stats=1 > $(FUZZ_DIR)/$(1).log 2>&1; \
status=$$?; grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^#[0-9]+ +DONE|ERROR|SUMMARY|Test unit written" $(FUZZ_DIR)/$(1).log | tail -5; \
[ $$status = 0 ]
endef

fuzz-build: setup
	@mkdir -p $(FUZZ_DIR)
	@printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$$(dirname $$(readlink -f $$(command -v $(SWIFT))))/ld.lld" > $(FUZZ_DIR)/toolset.json
	$(SWIFT) build -c $(FUZZ_CONFIG) --scratch-path $(FUZZ_DIR) --toolset $(FUZZ_DIR)/toolset.json --product ldm-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fno-sanitize-recover=undefined \
	  -Xlinker --export-dynamic-symbol=LLVMFuzzerRunDriver

fuzz: fuzz-build
	@$(foreach t,$(FUZZ_TARGETS),$(call fuzz-one,$(t)) && ) true

clean:
	rm -rf .build
