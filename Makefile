# The course's top-level Makefile. Every target works from a fresh clone.
#
#   make                  build every stage (make inside a stage builds just that one)
#   make run              build and start the final server on 127.0.0.1:9090
#   make client           start the final client (in a second terminal)
#   make test             install what is missing, then every test of every stage
#   make test LESSON=02   one stage: 01, 02, 03, final, 04, 05 ... (stages.txt; the course's own code)
#     IMPL=work/02-threads    ...your copy of that stage (see make start): its steps in order, stopping at the
#                                first that fails, then the whole stage; with ONLY=1 the steps alone
#     SERVER=prog CLIENT=prog ...test any programs, written in any language
#     ONLY=1                  ...only the tests of what that stage adds
#   make start LESSON=02  copy a stage into work/ with the code of its steps left for you to write
#   make progress         one line per stage: the steps you have done, and the next one
#   make watch LESSON=02  run your copy's steps again whenever you save a file (IMPL= for another copy)
#   make prove            CI: every step's tests catch its missing code (starters, steps 1..k, stage before), and
#                         every mistake of each stage's mistakes.ini is caught by its own step (REPEAT=3 runs;
#                         JOBS=2 proves two stages at a time)
#   make check-stages     CI: a file that differs from the stage before is one the stage says it changes
#   make check            the Check unit tests only
#   make windows          every stage as Windows programs (server.exe, client.exe)
#   make diff FROM=01 TO=02   what changed between two stages
#   make sanitize         Check tests and harness under ASan+UBSan, then TSan
#   make fuzz             fuzz the line framer, lesson 05's RESP parser, lesson 07's TLS glue, lesson 08's WebSocket, FUZZ_SECONDS
#                         each (default 60)
#   make reliability      sanitize, fuzz and the reliability tests; writes docs/reliability.md
#   make bench            measure every stage (and Redis); writes docs/benchmarks.md and two plots
#   make docs             regenerate the diagrams (SVG) from docs/diagrams/*.dot
#   make deps             install the build and test dependencies
#   make format           apply .clang-format to every C file
#   make clean            remove everything built

# The stages, in order: stages.txt is the one list of them (the harness and the scripts read it too).
STAGES := $(shell sed 's/\#.*//' stages.txt)
STAGE_NAMES := $(patsubst lessons/%,%,$(foreach s,$(STAGES),$(firstword $(subst -, ,$(notdir $(s))))))

# stage_dir(name): "01" -> lessons/01-echo-blocking, "final" -> final.
stage_dir = $(or $(filter lessons/$(1)% $(1),$(STAGES)),$(error no stage "$(1)": use one of $(STAGE_NAMES)))

SELECTED := $(if $(LESSON),$(call stage_dir,$(LESSON)),$(STAGES))
PYTHON = $(shell scripts/find-python)

# Testing your own code: IMPL is a copy of one stage (its Check tests and programs
# are used); SERVER and CLIENT are programs of any kind (only the harness runs).
ifneq ($(IMPL)$(SERVER)$(CLIENT),)
ifeq ($(LESSON),)
$(error IMPL, SERVER and CLIENT need LESSON= one of $(STAGE_NAMES): the stage whose tests to run)
endif
endif
BUILT := $(if $(IMPL),$(IMPL),$(if $(SERVER)$(CLIENT),,$(SELECTED)))
HARNESS_ENV := COURSE_STAGES="$(SELECTED)" COURSE_ONLY_NEW=$(ONLY) \
    COURSE_IMPL=$(if $(IMPL),$(abspath $(IMPL))) COURSE_SERVER=$(if $(SERVER),$(abspath $(SERVER))) \
    COURSE_CLIENT=$(if $(CLIENT),$(abspath $(CLIENT)))

FUZZ_SECONDS ?= 60
# Undefined behaviour ends the run as a crash does (UBSan would otherwise print it and go on, exit 0).
FUZZ_FLAGS := -std=c11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

.PHONY: all run client test check windows diff deps format clean sanitize fuzz reliability bench docs start progress \
    watch prove check-stages

all:
	@for stage in $(BUILT); do $(MAKE) -s -C $$stage all || exit 1; done
	@$(MAKE) -s -C tools

run:
	@$(MAKE) -s -C final all
	cd final && ./server

client:
	@$(MAKE) -s -C final all
	cd final && ./client

deps:
	@scripts/install-deps

windows:
	@for stage in $(BUILT); do $(MAKE) -s -C $$stage windows || exit 1; done

check: deps
	@for stage in $(BUILT); do \
	    echo "== Check unit tests: $$stage"; \
	    $(MAKE) -s -C $$stage check || exit 1; \
	done

# The harness runs the Linux programs, and the Windows ones under Wine when
# MinGW-w64 and Wine are installed (tests/conftest.py says how it decides).
# With IMPL, scripts/steps.py builds the copy and runs its steps in order (from the one it last stopped at);
# with SERVER and CLIENT, it runs the steps' harness tests on those programs, in order, then the whole stage.
ifneq ($(IMPL)$(SERVER)$(CLIENT),)
test: deps
	@test -n "$(PYTHON)" || { echo "make test: no Python with pytest; run 'make deps'" >&2; exit 1; }
	@$(MAKE) -s -C tools
	@$(PYTHON) scripts/steps.py run $(SELECTED) $(if $(IMPL),--impl $(IMPL)) $(if $(SERVER),--server $(SERVER)) \
	    $(if $(CLIENT),--client $(CLIENT)) $(if $(ONLY),--only) $(if $(PYTEST_ARGS),--pytest-args "$(PYTEST_ARGS)")
else
test: check all
	@if command -v x86_64-w64-mingw32-gcc >/dev/null; then $(MAKE) -s windows; fi
	@test -n "$(PYTHON)" || { echo "make test: no Python with pytest; run 'make deps'" >&2; exit 1; }
	@echo "== pytest harness ($(PYTHON)): $(SELECTED)"
	$(HARNESS_ENV) $(PYTHON) -m pytest tests $(PYTEST_ARGS)
endif

start:
	@test -n "$(LESSON)" || { echo "usage: make start LESSON=02" >&2; exit 2; }
	@$(PYTHON) scripts/steps.py start $(SELECTED) work/$(notdir $(SELECTED))

progress:
	@$(MAKE) -s -C tools
	@$(PYTHON) scripts/steps.py progress

watch:
	@test -n "$(LESSON)" || { echo "usage: make watch LESSON=02 [IMPL=work/02-threads]" >&2; exit 2; }
	@$(MAKE) -s -C tools
	@$(PYTHON) scripts/steps.py watch $(SELECTED) --impl $(or $(IMPL),work/$(notdir $(SELECTED)))

prove: all
	@$(MAKE) -s windows
	@$(PYTHON) scripts/steps.py prove $(if $(LESSON),$(SELECTED)) $(if $(REPEAT),--repeat $(REPEAT)) $(if $(JOBS),--jobs $(JOBS))

check-stages:
	@$(PYTHON) scripts/steps.py check-stages

sanitize: deps
	@scripts/sanitize

# libFuzzer with ASan+UBSan on final/'s framer, compared line by line with a reference, then on lesson
# 05's RESP parser, lesson 07's TLS glue and lesson 08's HTTP and WebSocket, whole against chunked. New
# inputs go to build/, so the committed seeds stay as they are.
RESP_DIR := lessons/05-commands
TLS_DIR  := lessons/07-tls
WS_DIR   := lessons/08-browser
fuzz: deps
	@mkdir -p build/fuzz-corpus build/fuzz-resp-corpus build/fuzz-tls-corpus build/fuzz-ws-corpus
	@cp final/tests/fuzz-corpus/* build/fuzz-corpus/
	@cp $(RESP_DIR)/tests/fuzz-resp-corpus/* build/fuzz-resp-corpus/
	@cp $(TLS_DIR)/tests/fuzz-tls-corpus/* build/fuzz-tls-corpus/
	@$(MAKE) -s -C $(TLS_DIR) certs >/dev/null
	clang $(FUZZ_FLAGS) -Ifinal -o build/fuzz_line_framer final/tests/fuzz_line_framer.c final/line_framer.c
	clang $(FUZZ_FLAGS) -I$(RESP_DIR) -o build/fuzz_resp $(RESP_DIR)/tests/fuzz_resp.c $(RESP_DIR)/resp.c
	clang $(FUZZ_FLAGS) -I$(TLS_DIR) -o build/fuzz_tls $(TLS_DIR)/tests/fuzz_tls.c $(TLS_DIR)/tls.c \
	    $(TLS_DIR)/outbuf.c -lssl -lcrypto
	clang $(FUZZ_FLAGS) -I$(WS_DIR) -o build/fuzz_ws $(WS_DIR)/tests/fuzz_ws.c $(WS_DIR)/ws.c $(WS_DIR)/outbuf.c \
	    -lcrypto
	@for target in line_framer resp tls ws; do \
	    suffix=$$([ $$target = line_framer ] || echo -$$target); \
	    log=build/fuzz$$suffix.log; \
	    corpus=build/fuzz$$suffix-corpus; \
	    build/fuzz_$$target $$corpus -max_total_time=$(FUZZ_SECONDS) -timeout=5 \
	        -rss_limit_mb=1024 -print_final_stats=1 > $$log 2>&1; \
	    status=$$?; echo "fuzz_$$target:"; \
	    grep -E '^#[0-9]+[[:space:]]+DONE|^Done|stat::number_of_executed_units|ERROR|SUMMARY' $$log; \
	    echo "fuzz_$$target: exit status $$status (0: no crash, leak or hang)"; \
	    [ $$status -eq 0 ] || exit $$status; \
	done

reliability: all
	@rm -rf build/figures.json build/sanitizers build/fuzz.log
	@$(MAKE) -s sanitize fuzz windows
	COURSE_STAGES=final $(PYTHON) -m pytest tests/test_reliability.py tests/test_protocol.py -q
	@mkdir -p docs
	$(PYTHON) scripts/reliability-report > docs/reliability.md
	@echo "wrote docs/reliability.md"

bench:
	@EXTRA_PACKAGES="gnuplot-nox redis-server" scripts/install-deps
	scripts/bench

docs:
	@EXTRA_PACKAGES="graphviz" scripts/install-deps
	$(MAKE) -C docs

diff:
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make diff FROM=01 TO=02" >&2; exit 2; }
	@diff -ruN -x build -x certs -x server -x 'server-*' -x client -x '*.exe' -x README.md -x stage.ini -x starter.ini \
	    $(call stage_dir,$(FROM)) $(call stage_dir,$(TO)) || true

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@for stage in $(STAGES); do $(MAKE) -s -C $$stage clean; done
	@$(MAKE) -s -C tools clean
	rm -rf build
