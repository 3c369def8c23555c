# The course's top-level Makefile. Every target works from a fresh clone.
#
#   make                  build every stage (make inside a stage builds just that one)
#   make run              build and start the final server on 127.0.0.1:9090
#   make client           start the final client (in a second terminal)
#   make test             install what is missing, then every test of every stage
#   make test LESSON=02   one stage: 01, 02, 03 or final
#   make check            the Check unit tests only
#   make windows          every stage as Windows programs (server.exe, client.exe)
#   make diff FROM=01 TO=02   what changed between two stages
#   make deps             install the build and test dependencies
#   make format           apply .clang-format to every C file
#   make clean            remove everything built

STAGES := lessons/01-echo-blocking lessons/02-threads lessons/03-graceful-shutdown final

# stage_dir(name): "01" -> lessons/01-echo-blocking, "final" -> final.
stage_dir = $(or $(filter lessons/$(1)% $(1),$(STAGES)),$(error no stage "$(1)": use one of 01 02 03 final))

SELECTED := $(if $(LESSON),$(call stage_dir,$(LESSON)),$(STAGES))
PYTHON = $(shell scripts/find-python)

.PHONY: all run client test check windows diff deps format clean

all:
	@for stage in $(SELECTED); do $(MAKE) -s -C $$stage all || exit 1; done

run:
	@$(MAKE) -s -C final all
	cd final && ./server

client:
	@$(MAKE) -s -C final all
	cd final && ./client

deps:
	@scripts/install-deps

windows:
	@for stage in $(SELECTED); do $(MAKE) -s -C $$stage windows || exit 1; done

check: deps
	@for stage in $(SELECTED); do \
	    echo "== Check unit tests: $$stage"; \
	    $(MAKE) -s -C $$stage check || exit 1; \
	done

# The harness runs the Linux programs, and the Windows ones under Wine when
# MinGW-w64 and Wine are installed (tests/README.md says how it decides).
test: check all
	@if command -v x86_64-w64-mingw32-gcc >/dev/null; then $(MAKE) -s windows; fi
	@test -n "$(PYTHON)" || { echo "make test: no Python with pytest; run 'make deps'" >&2; exit 1; }
	@echo "== pytest harness ($(PYTHON)): $(SELECTED)"
	COURSE_STAGES="$(SELECTED)" $(PYTHON) -m pytest tests $(PYTEST_ARGS)

diff:
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make diff FROM=01 TO=02" >&2; exit 2; }
	@diff -ru -x build -x server -x client -x '*.exe' -x README.md \
	    $(call stage_dir,$(FROM)) $(call stage_dir,$(TO)) || true

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@for stage in $(STAGES); do $(MAKE) -s -C $$stage clean; done
	rm -rf build
