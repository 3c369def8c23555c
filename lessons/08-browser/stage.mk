# stage.mk - how every stage is built. A stage's Makefile names its sources
# and includes this file, which every stage has, the same in each: so
# `make` works inside any stage's folder, and in a copy of one, wherever
# it is (make start's, or your own `cp -r`).
#
#   make               the stage's ./server and ./client (POSIX)
#   make check         builds and runs the stage's Check unit tests
#   make windows       server.exe and client.exe with MinGW-w64 (Winsock)
#   make clean         removes everything built
#
# Variables a stage sets before including this file:
#   COMMON_SRCS        sources linked into both programs and the unit tests
#   POSIX_SRCS         sources that only the POSIX build links (lesson 04: its poller backend)
#   WIN32_SRCS         sources that only the Windows build links
#   CHECK_SRCS         the unit tests (tests/check_*.c, one suite a module)
#   EXTRA_PROGRAMS     more POSIX programs `make` builds, by rules of the stage's own (lesson 04: server-poll)
#   THREADS            -pthread from lesson 02 on (POSIX compile and link)
#   LIBS               more libraries the POSIX programs link (lesson 07: OpenSSL's)

CC          ?= cc
MINGW_CC    ?= x86_64-w64-mingw32-gcc
CFLAGS      ?= -O2 -g
WARNINGS    := -Wall -Wextra -Wpedantic -Werror
BUILD       ?= build

ifeq ($(CC),cc)
CC := gcc
endif

POSIX_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS)
# Vista (0x0600) is the oldest Windows with WSAPoll and inet_ntop.
WIN32_FLAGS := -std=c11 -D_WIN32_WINNT=0x0600 -DWIN32_LEAN_AND_MEAN $(WARNINGS)
WIN32_LIBS  := -lws2_32

POSIX_OBJS  := $(patsubst %.c,$(BUILD)/posix/%.o,$(COMMON_SRCS) $(POSIX_SRCS) platform_posix.c)
WIN32_OBJS  := $(patsubst %.c,$(BUILD)/win32/%.o,$(COMMON_SRCS) $(WIN32_SRCS) platform_win32.c)
CHECK_OBJS  := $(patsubst %.c,$(BUILD)/posix/%.o,$(CHECK_SRCS))
CHECK_FLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS  := $(shell pkg-config --libs check 2>/dev/null)

.PHONY: all check windows clean
.DEFAULT_GOAL := all

all: server client $(EXTRA_PROGRAMS)

server: $(BUILD)/posix/server.o $(POSIX_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) $(THREADS)

client: $(BUILD)/posix/client.o $(POSIX_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) $(THREADS)

$(BUILD)/posix/%.o: %.c $(wildcard *.h) | $(BUILD)/posix/tests
	$(CC) $(POSIX_FLAGS) $(THREADS) $(CFLAGS) $(if $(filter tests/%,$<),$(CHECK_FLAGS) -I.) -c -o $@ $<

$(BUILD)/posix/tests $(BUILD)/win32:
	mkdir -p $@

check: $(BUILD)/run_checks
	$(BUILD)/run_checks

$(BUILD)/run_checks: $(CHECK_OBJS) $(POSIX_OBJS)
	@pkg-config --exists check || { echo "make check needs the Check library: run 'make deps' at the top of the course" >&2; exit 1; }
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS) $(THREADS)

windows: server.exe client.exe

%.exe: $(BUILD)/win32/%.o $(WIN32_OBJS)
	$(MINGW_CC) -O2 -static-libgcc -o $@ $^ $(WIN32_LIBS)

$(BUILD)/win32/%.o: %.c $(wildcard *.h) | $(BUILD)/win32
	$(MINGW_CC) $(WIN32_FLAGS) -O2 -c -o $@ $<

clean:
	rm -rf $(BUILD) server client server.exe client.exe $(EXTRA_PROGRAMS)
.SECONDARY:
