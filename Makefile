# messagechannel: build, test and benchmark on every installed Lua.
#
#   make          build messagechannel.core for every installed Lua
#   make demo     run the examples (the luv and cqueues ones where their
#                 library loads)
#   make test     everything CI checks (specs on each Lua, layers,
#                 luacheck, meta, ASan+UBSan specs, specs under Lua's API
#                 checks, ThreadSanitizer thread specs, the pipe build,
#                 LuaRocks install)
#   make check    specs under ASan+UBSan (Lua 5.4 and LuaJIT)
#   make apicheck specs on a Lua 5.4 built with Lua's API checks
#                 (LUA_USE_APICHECK), from Debian's source of the
#                 installed headers' version
#   make tsan     thread specs under ThreadSanitizer (Lua 5.4 and LuaJIT)
#   make stress   fan-in, ring and terminate-during-transfer stress under
#                 ThreadSanitizer (STRESS_SCALE)
#   make pipe     event-loop and thread specs (and the remote-port specs) with the hub on a pipe, as on
#                 Unix systems without eventfd
#   make valgrind specs under valgrind (Lua 5.4)
#   make oom      allocation-failure injection (ASan+LSan) at every
#                 allocation of each case (one in OOM_SHARED of those a
#                 worker's state makes as in a case before, one in
#                 OOM_FIRST of those the first shares), OOM_STRIDE
#                 to sample (make test: OOM_OWN=3, see below)
#   make fuzz     libFuzzer on the decoder, the cloner and the frame reader
#                 (ASan+UBSan), one target per CPU at a time,
#                 FUZZ_SECONDS each
#   make layers   no source calls one listed above it in src/mc.h, and the
#                 module exports only luaopen_messagechannel_core
#   make lint     luacheck
#   make bench    benchmarks against the peers
#   make meta     docs/meta.lua declares every name README.md documents
#   make deps     install missing Debian packages (as root), or say how

CC      ?= cc
WARN     = -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
           -Wdeclaration-after-statement -Werror
CFLAGS  ?= -O2 -g
BASEFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -pthread $(WARN)
ALLFLAGS = $(BASEFLAGS) $(CFLAGS)
LDSHARED = -shared
LIBS     = -ldl

SRCS = src/bytes.c src/hub.c src/msg.c src/queue.c src/group.c src/wire.c \
       src/net.c src/nats.c src/ctx.c src/codec.c src/message.c src/sched.c \
       src/timers.c src/buffer.c \
       src/port.c src/broadcast.c src/remote.c src/worker.c src/core.c
HDRS = src/mc.h src/compat.h

# The Lua versions (build dir names). Each one's interpreter and pkg-config
# module are both named lua5.x, or luajit.
ALL_LUAS = 5.1 5.2 5.3 5.4 luajit
lua_name  = $(if $(filter luajit,$1),luajit,lua$1)
have_lua  = $(and $(shell command -v $(call lua_name,$1)),$(shell pkg-config --exists $(call lua_name,$1) && echo y))
# The same mapping in a recipe's shell loop over $$v.
SH_LUA    = $$( [ $$v = luajit ] && echo luajit || echo lua$$v )
LUAS     := $(foreach v,$(ALL_LUAS),$(if $(call have_lua,$v),$v))
SAN_LUAS := $(filter 5.4 luajit,$(LUAS))

BUSTED   = /usr/bin/busted
RUN_ENV  = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/$1/?.so;;"

# Debian packages: what `make demo` needs (a compiler, the Luas and their
# headers, the event-loop examples' libraries), and what every target
# needs; `make deps` installs the missing ones.
DEMO_PACKAGES = gcc make pkg-config \
  lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
  lua5.4 liblua5.4-dev luajit libluajit-5.1-dev lua-luv lua-cqueues
DEB_PACKAGES = $(DEMO_PACKAGES) git lua-busted lua-check luarocks lua-lpeg \
  lua-cjson lua-socket valgrind nodejs clang libclang-rt-dev \
  libnats-dev nats-server dpkg-dev

SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
SAN_PRELOAD = $(shell $(CC) -print-file-name=libasan.so) \
              $(shell $(CC) -print-file-name=libubsan.so)
TSAN_FLAGS = -fsanitize=thread -fno-omit-frame-pointer
TSAN_PRELOAD = $(shell $(CC) -print-file-name=libtsan.so)

.PHONY: all demo demo-deps run-demo run-bench test check checks apicheck fuzz tsan stress pipe oom valgrind layers lint meta bench deps rock specs clean

all: $(foreach v,$(LUAS),build/$v/messagechannel/core.so)

build/%/messagechannel/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) $$(pkg-config --cflags $(call lua_name,$*)) $(LDSHARED) \
	  -o $@ $(SRCS) $(LIBS)

build/asan-%/messagechannel/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) -O1 -g $(SAN_FLAGS) \
	  $$(pkg-config --cflags $(call lua_name,$*)) $(LDSHARED) -o $@ $(SRCS) \
	  $(LIBS)

# The hub with a pipe instead of an eventfd, as on Unix systems other than
# Linux.
build/pipe-%/messagechannel/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALLFLAGS) -DMC_USE_PIPE $$(pkg-config --cflags $(call lua_name,$*)) \
	  $(LDSHARED) -o $@ $(SRCS) $(LIBS)

build/tsan-%/messagechannel/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) -O1 -g $(TSAN_FLAGS) \
	  $$(pkg-config --cflags $(call lua_name,$*)) $(LDSHARED) -o $@ $(SRCS) \
	  $(LIBS)

deps:
	@sh .ci/deps $(DEB_PACKAGES)

demo-deps:
	@sh .ci/deps $(DEMO_PACKAGES)

# deps may install Lua, so what needs the list of Luas runs in a new make.
demo: demo-deps
	@$(MAKE) --no-print-directory run-demo

run-demo: all
	@test -n "$(LUAS)" || { echo "no Lua with headers found: run make deps"; exit 1; }
	@v=$(firstword $(filter 5.4,$(LUAS)) $(LUAS)); \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/channel.lua && echo && \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/demo.lua && echo && \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/threads.lua && echo && \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/pipeline.lua && echo && \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/broadcast.lua && echo && \
	  $(call RUN_ENV,$$v) $(SH_LUA) examples/remote.lua || exit 1; \
	  for lib in luv cqueues; do \
	    echo; \
	    if $(SH_LUA) -e "require '$$lib'" >/dev/null 2>&1; then \
	      $(call RUN_ENV,$$v) $(SH_LUA) examples/$$lib.lua || exit 1; \
	    else \
	      echo "examples/$$lib.lua skipped: $$lib does not load in $(SH_LUA) (make deps installs lua-$$lib)"; \
	    fi; \
	  done

# The resolver shim spec/21 preloads into a peer (spec/remote/resolve.c).
build/test/resolve.so: spec/remote/resolve.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) -O2 -shared -o $@ $< -ldl

# One busted run per Lua version, three at a time (the machines have two
# cores, and a busted run alone keeps one about two thirds busy: its specs
# also wait for workers, peers and timers): a pool, each run starting as
# soon as one ends. Then each one's summary in order and one closing line
# for all.
SPEC_JOBS ?= 3
SPEC_RUN = bin=$$( [ $$0 = luajit ] && echo luajit || echo lua$$0 ); \
  echo "== specs on $$($$bin -v 2>&1 | head -1)"; \
  $(call RUN_ENV,$$0) $$bin $(BUSTED) -o utfTerminal spec \
    > build/specs-$$0.log 2>&1; \
  echo $$? > build/specs-$$0.rc
specs: all build/test/resolve.so
	@test -n "$(LUAS)" || { echo "no Lua with headers found: run make deps"; exit 1; }
	@rm -f build/specs-*.rc; \
	printf '%s\n' $(LUAS) | xargs -P $(SPEC_JOBS) -n 1 sh -c '$(SPEC_RUN)'; \
	pass=0; fail=0; bad=""; \
	for v in $(LUAS); do \
	  echo "== specs on Lua $$v"; \
	  rc=$$(cat build/specs-$$v.rc 2>/dev/null || echo 1); \
	  tail -n 30 build/specs-$$v.log | grep -v '^$$' | tail -n 12; \
	  line=$$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' build/specs-$$v.log | tail -1); \
	  s=$$(echo "$$line" | sed -E 's/^([0-9]+) success.*/\1/'); \
	  f=$$(echo "$$line" | sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1 \2/' | awk '{print $$1+$$2}'); \
	  if [ -z "$$line" ]; then f=1; fi; \
	  if [ $$rc -ne 0 ] || [ $${f:-1} -ne 0 ]; then bad="$$bad $$v"; fi; \
	  echo "Lua $$v: $${s:-0} passed, $${f:-1} failed"; \
	  pass=$$((pass + $${s:-0})); fail=$$((fail + $${f:-1})); \
	done; \
	echo "specs: $$pass passed, $$fail failed" | tee build/specs.total; \
	test -z "$$bad" || { echo "specs failed on:$$bad (logs in build/specs-*.log)"; exit 1; }

# What a failed run under a sanitizer or the API checks printed that
# tells why: each failing spec with its message (up to the next spec's
# result, or the next spec's name in a --verbose log), each sanitizer
# report, failed assertion or Lua panic, then the log's last lines (CI
# shows only the end of its output).
SHOW_FAILURE = { awk '/^not ok/ { f = 1; print; next } f && /^\# [^ ]+ @ [0-9]+: / { f = 0 } \
  f && /^\#/ { print; next } { f = 0 } \
  /WARNING: ThreadSanitizer|ERROR: [A-Za-z]*Sanitizer|runtime error:|Assertion .* failed|^PANIC/ { n = 30 } \
  n > 0 { print; n-- }' $1 | head -n 150; echo "-- the last lines of $1:"; tail -n 12 $1; }

# Waits for the background runs of check and tsan, one per version in
# $(SAN_LUAS) at the same time (the machines have two cores), then prints
# each one's output in order and fails when any failed.
PAR_WAIT = wait; bad=""; for v in $(SAN_LUAS); do cat build/$@-$$v.out; \
  [ "$$(cat build/$@-$$v.rc 2>/dev/null)" = 0 ] || bad="$$bad $$v"; done; \
  test -z "$$bad" || { echo "$@ failed on:$$bad"; exit 1; }

# One part of make test, and the seconds it took (CI has a time budget).
TEST_PART = t=$$(date +%s); $(MAKE) --no-print-directory $1 \
  && echo "make test: $1 took $$(( $$(date +%s) - t )) s"

test: deps
	@+$(call TEST_PART,specs)
	@+$(call TEST_PART,layers)
	@+$(call TEST_PART,lint)
	@+$(call TEST_PART,meta)
	@+$(call TEST_PART,checks)
	@+$(call TEST_PART,fuzz)
	@+$(call TEST_PART,tsan)
	@+$(call TEST_PART,stress)
	@+$(call TEST_PART,oom OOM_OWN=3)
	@+$(call TEST_PART,pipe)
	@+$(call TEST_PART,rock)
	@echo "make test: layers, lint, meta, sanitizers and luarocks install all passed"
	@sed 's/^specs:/total:/' build/specs.total

# The specs under ASan+UBSan, both versions at once, with LeakSanitizer at
# exit on Lua 5.4. Its scan stops every thread with ptrace; when its own
# tracer fails there (it crashed once, under this machine's sandboxed
# kernel) after every spec passed, the run is made once more. The sweep
# of regress/interrupt-anywhere takes every other instruction here, the
# odd ones, and apicheck's the even ones: on Lua 5.4 the two runs share
# it, and specs sweeps every one on each version.
check: $(foreach v,$(SAN_LUAS),build/asan-$v/messagechannel/core.so) build/test/resolve.so
	@test -n "$(SAN_LUAS)" || { echo "check needs lua5.4 or luajit: run make deps"; exit 1; }
	@rm -f build/check-*.rc; for v in $(SAN_LUAS); do \
	  { ( bin=$(SH_LUA); \
	  for try in 1 2; do \
	    echo "== ASan+UBSan specs on $$bin"; \
	    LD_PRELOAD="$(SAN_PRELOAD)" ASAN_OPTIONS=detect_leaks=$$( [ $$v = luajit ] && echo 0 || echo 1 ) \
	      UBSAN_OPTIONS=print_stacktrace=1 MC_INTERRUPT_EVERY=2 MC_INTERRUPT_FROM=1 \
	      $(call RUN_ENV,asan-$$v) $$bin $(BUSTED) -o TAP spec > build/check-$$v.log 2>&1 && break; \
	    rc=$$?; \
	    if [ $$try = 1 ] && grep -q 'LeakSanitizer has encountered a fatal error' build/check-$$v.log \
	       && ! grep -q '^not ok' build/check-$$v.log; then \
	      grep 'Tracer caught' build/check-$$v.log; \
	      echo "LeakSanitizer's own tracer failed at exit (every spec passed): once more"; continue; fi; \
	    $(call SHOW_FAILURE,build/check-$$v.log); echo "check failed on $$v (exit code $$rc)"; exit 1; \
	  done; \
	  echo "ASan+UBSan on $$v: $$(grep -c '^ok' build/check-$$v.log) passed, $$(grep -c '^not ok' build/check-$$v.log) failed" \
	    ) > build/check-$$v.out 2>&1; echo $$? > build/check-$$v.rc; } & \
	done; $(PAR_WAIT)

# check and apicheck at once, as make test runs them: three runs, as in
# specs (a run under a sanitizer or the API checks also waits for
# workers, peers and timers), each one's output printed whole as it ends.
checks:
	@+$(MAKE) --no-print-directory -j2 --output-sync=target check apicheck

# The specs on Lua 5.4 built with Lua's API checks (LUA_USE_APICHECK): a C
# function that misuses the API aborts there on an assertion, where ASan
# sees nothing (a push past the room asked for lands in the slots Lua
# keeps spare past the stack's top). .ci/apicheck builds that interpreter
# once into build/apicheck, from Debian's source of the installed
# liblua5.4-dev, fetched through apt with a source list and lists of its
# own. build/apicheck comes first in PATH, so the specs' child processes
# run under it too, whether they take arg[-1] or lua5.4 by name. With
# --verbose, each spec's name is written before it runs: an abort leaves
# the one that aborted as the log's last spec line. It sweeps the even
# instructions of regress/interrupt-anywhere (see check).
APICHECK_LUA = build/apicheck/lua5.4
$(APICHECK_LUA): .ci/apicheck
	@sh .ci/apicheck $(@D) "$(CC)"

apicheck: $(APICHECK_LUA) build/5.4/messagechannel/core.so build/test/resolve.so
	@echo "== specs on $$($(APICHECK_LUA) -v 2>&1 | head -1) with LUA_USE_APICHECK"; \
	  PATH="$(CURDIR)/$(dir $(APICHECK_LUA)):$$PATH" MC_INTERRUPT_EVERY=2 MC_INTERRUPT_FROM=2 \
	    $(call RUN_ENV,5.4) \
	    $(APICHECK_LUA) $(BUSTED) -o TAP --verbose spec > build/apicheck.log 2>&1 \
	  || { rc=$$?; $(call SHOW_FAILURE,build/apicheck.log); echo "apicheck failed (exit code $$rc, log in build/apicheck.log)"; exit 1; }; \
	  echo "API checks on 5.4: $$(grep -c '^ok' build/apicheck.log) passed, $$(grep -c '^not ok' build/apicheck.log) failed"

# The thread specs under ThreadSanitizer, both versions at once; any
# report fails the run. When the runtime cannot map its own shadow memory
# (it failed once, on this machine under memory pressure) before any spec
# failed or any report, the run is made once more.
tsan: $(foreach v,$(SAN_LUAS),build/tsan-$v/messagechannel/core.so)
	@test -n "$(SAN_LUAS)" || { echo "tsan needs lua5.4 or luajit: run make deps"; exit 1; }
	@rm -f build/tsan-*.rc; for v in $(SAN_LUAS); do \
	  { ( bin=$(SH_LUA); \
	  for try in 1 2; do \
	    echo "== ThreadSanitizer thread specs on $$bin"; \
	    LD_PRELOAD="$(TSAN_PRELOAD)" TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
	      $(call RUN_ENV,tsan-$$v) $$bin $(BUSTED) -o TAP --tags=threads spec > build/tsan-$$v.log 2>&1 && break; \
	    rc=$$?; \
	    if [ $$try = 1 ] && grep -q 'ThreadSanitizer failed to allocate' build/tsan-$$v.log \
	       && ! grep -q -e '^not ok' -e 'WARNING: ThreadSanitizer' build/tsan-$$v.log; then \
	      grep 'ThreadSanitizer failed to allocate' build/tsan-$$v.log; \
	      echo "ThreadSanitizer could not map its own memory (no spec failed): once more"; continue; fi; \
	    $(call SHOW_FAILURE,build/tsan-$$v.log); echo "tsan failed on $$v (exit code $$rc)"; exit 1; \
	  done; \
	  if grep -q "WARNING: ThreadSanitizer" build/tsan-$$v.log; then \
	    grep -A30 "WARNING: ThreadSanitizer" build/tsan-$$v.log | head -60; echo "tsan reports on $$v"; exit 1; fi; \
	  echo "ThreadSanitizer on $$v: $$(grep -c '^ok' build/tsan-$$v.log) passed, $$(grep -c '^not ok' build/tsan-$$v.log) failed" \
	    ) > build/tsan-$$v.out 2>&1; echo $$? > build/tsan-$$v.rc; } & \
	done; $(PAR_WAIT)

# spec/stress/stress.lua under ThreadSanitizer: 8 workers fanning in, a
# ring of workers, and workers terminated while ports move into them. Its
# size is STRESS_SCALE (1 in CI; 10 or more by hand), its seed
# STRESS_SEED when set. A violation, a hang, a crash or any ThreadSanitizer
# report fails it; the log is build/stress-<lua>.log.
STRESS_SCALE ?= 1
stress: $(foreach v,$(SAN_LUAS),build/tsan-$v/messagechannel/core.so)
	@test -n "$(SAN_LUAS)" || { echo "stress needs lua5.4 or luajit: run make deps"; exit 1; }
	@for v in $(SAN_LUAS); do \
	  bin=$(SH_LUA); log=build/stress-$$v.log; start=$$(date +%s); \
	  echo "== stress on $$bin under ThreadSanitizer, scale $(STRESS_SCALE)"; \
	  LD_PRELOAD="$(TSAN_PRELOAD)" TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
	    $(call RUN_ENV,tsan-$$v) $$bin spec/stress/stress.lua $(STRESS_SCALE) > $$log 2>&1 \
	    || { rc=$$?; $(call SHOW_FAILURE,$$log); echo "stress failed on $$v (exit code $$rc, log in $$log)"; exit 1; }; \
	  if grep -q "WARNING: ThreadSanitizer" $$log; then \
	    grep -A30 "WARNING: ThreadSanitizer" $$log | head -60; echo "tsan reports in stress on $$v"; exit 1; fi; \
	  echo "stress on $$v: fan-in, ring and terminate passed in $$(( $$(date +%s) - start )) s ($$(sed -n 's/.*\(seed [0-9]*\).*/\1/p' $$log | head -n 1), scale $(STRESS_SCALE))"; \
	done

# The event-loop and thread specs on the pipe build (Lua 5.4 or the first
# Lua found).
PIPE_LUA = $(firstword $(filter 5.4,$(LUAS)) $(LUAS))
pipe: $(if $(LUAS),build/pipe-$(PIPE_LUA)/messagechannel/core.so) build/test/resolve.so
	@test -n "$(LUAS)" || { echo "no Lua with headers found: run make deps"; exit 1; }
	@v=$(PIPE_LUA); bin=$(SH_LUA); echo "== event-loop and thread specs on $$bin, hub on a pipe"; \
	  $(call RUN_ENV,pipe-$$v) $$bin $(BUSTED) -o TAP spec/13-eventloop_spec.lua \
	    spec/14-adapters_spec.lua spec/11-threads_spec.lua spec/21-remote_spec.lua \
	    > build/pipe-$$v.log 2>&1 \
	  || { tail -n 40 build/pipe-$$v.log; echo "pipe specs failed"; exit 1; }; \
	  echo "pipe hub on $$v: $$(grep -c '^ok' build/pipe-$$v.log) passed, $$(grep -c '^not ok' build/pipe-$$v.log) failed"

# libFuzzer on the decoder (mc.deserialize of any bytes), on the cloner
# (the values spec/fuzz/program.lua builds) and on a link's frame reader
# (spec/fuzz/frames.lua), FUZZ_SECONDS each, under
# ASan+UBSan with the checks in spec/fuzz/*.lua, on Lua 5.4. Each target
# starts from its seeds (spec/fuzz/corpus/<target>) plus what earlier runs
# kept in build/fuzz/corpus-<target>. A crash, a sanitizer report, a leak,
# a hang (-timeout) or a failed check fails it and leaves the input in
# build/fuzz/<target>-*. Each entry of FUZZ_RUNS is target:max_len; up to
# FUZZ_JOBS targets run at once.
# Comparisons are not traced: libFuzzer would keep their operands, the
# module's pointers among them, where LeakSanitizer sees them, and a leaked
# block whose address was compared would not be reported.
FUZZ_SECONDS ?= 60
FUZZ_CC  = clang
FUZZ_RUNS = deserialize:65536 clone:4096 frames:65536
FUZZ_TARGETS = $(foreach r,$(FUZZ_RUNS),$(word 1,$(subst :, ,$r)))
FUZZ_BINS = $(addprefix build/fuzz/,$(FUZZ_TARGETS))
# Targets fuzzed at once: one per CPU, each on a CPU of its own.
FUZZ_JOBS ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
FUZZ_APT = sudo apt-get install -y clang libclang-rt-dev liblua5.4-dev

$(FUZZ_BINS): build/fuzz/%: spec/fuzz/harness.c $(SRCS) $(HDRS)
	@mkdir -p $(@D)
	@command -v $(FUZZ_CC) >/dev/null 2>&1 \
	  && echo 'int LLVMFuzzerTestOneInput(const char *p, unsigned long n) { return p && n == 0; }' > $@-probe.c \
	  && $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@-probe $@-probe.c >/dev/null 2>&1 \
	  && pkg-config --exists lua5.4 \
	  || { echo "make fuzz needs clang with libFuzzer and Lua 5.4's headers; run:"; echo "  $(FUZZ_APT)"; exit 1; }
	@rm -f $@-probe $@-probe.c
	$(FUZZ_CC) $(BASEFLAGS) -O1 -g $(SAN_FLAGS) -fsanitize=fuzzer \
	  -fno-sanitize-coverage=trace-cmp \
	  $$(pkg-config --cflags lua5.4) -DFUZZ_ROOT='"$(CURDIR)"' -DFUZZ_TARGET='"$*"' \
	  -o $@ $< $(SRCS) $$(pkg-config --libs lua5.4) $(LIBS) -lm

fuzz: $(FUZZ_BINS)
	@+$(MAKE) --no-print-directory -j$(FUZZ_JOBS) --output-sync=target \
	  $(FUZZ_RUN_RULES)

FUZZ_RUN_RULES = $(addprefix fuzz-run-,$(FUZZ_TARGETS))
.PHONY: $(FUZZ_RUN_RULES)
$(FUZZ_RUN_RULES): fuzz-run-%: build/fuzz/%
	@t=$*; len=$(word 2,$(subst :, ,$(filter $*:%,$(FUZZ_RUNS)))); \
	  dir=build/fuzz/corpus-$$t; log=build/fuzz/$$t.log; \
	  mkdir -p $$dir && cp spec/fuzz/corpus/$$t/* $$dir/ || exit 1; \
	  echo "== libFuzzer on $$t for $(FUZZ_SECONDS) s"; \
	  UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	    build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=$$len -print_final_stats=1 -artifact_prefix=build/fuzz/$$t- $$dir > $$log 2>&1 \
	  || { grep -v '^"' $$log | tail -n 60; echo "fuzz $$t failed (log in $$log, the input in build/fuzz/$$t-*)"; exit 1; }; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	  secs=$$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' $$log); \
	  cov=$$(grep -o 'cov: [0-9]*' $$log | tail -n 1 | cut -d' ' -f2); \
	  echo "fuzz $$t: $$runs runs in $$secs s, clean (coverage $$cov, corpus $$(ls $$dir | wc -l) inputs)"

# Allocation-failure injection (spec/oom/host.c): each case of
# spec/oom/*.lua runs once to count the Lua allocations of its action (or
# of its worker's state), then once with its k-th allocation failing for
# good, for every k, each in a process of its own under ASan+UBSan+LSan.
# Every point must end in a completed call or a clean error, with the
# ports coherent, no leak and no hang. (Where Lua could not call a
# finalizer, its call's allocation refused, what that finalizer frees
# leaks: such a point is listed apart and does not fail the run.) Of the allocations a worker's
# state makes alike in each case before it comes to the case's own code,
# the cases after the first run one point in OOM_SHARED (32; 1: all),
# and the first one in OOM_FIRST (4; 1: all) of those it shares with a
# later one. OOM_OWN=n runs one point in n of what each worker case does
# past that shared start, each case from its own offset: make test passes
# 3, which takes the worker cases' time (the longest part of make test)
# to a third and leaves the allocations they make alike there run by most
# likely one case or another; make oom alone runs every point.
# OOM_STRIDE=n runs every n-th point,
# OOM_SCENARIO=file.case,... some cases only; findings go to
# build/oom/report.txt. Lua 5.4 is linked statically when its static
# library is installed, for symbols in the stacks.
OOM_FLAGS = $(BASEFLAGS) -O1 -g $(SAN_FLAGS) -DMC_FAULT_INJECTION \
            $$(pkg-config --cflags lua5.4)
OOM_LUA = $(or $(wildcard $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)/liblua5.4.a),$$(pkg-config --libs lua5.4))

build/oom/host: spec/oom/host.c spec/oom/shim.c $(SRCS) $(HDRS)
	@pkg-config --exists lua5.4 || { echo "make oom needs Lua 5.4's headers: run make deps"; exit 1; }
	@mkdir -p $(@D)/messagechannel
	$(CC) $(OOM_FLAGS) $(LDSHARED) -o $(@D)/messagechannel/core.so spec/oom/shim.c
	$(CC) $(OOM_FLAGS) -Isrc -o $@ spec/oom/host.c $(SRCS) $(OOM_LUA) -lm \
	  $(LIBS) -Wl,--export-dynamic-symbol=oom_open_core

oom: build/oom/host
	@build/oom/host spec/oom/*.lua

valgrind: build/5.4/messagechannel/core.so build/test/resolve.so
	$(call RUN_ENV,5.4) valgrind --quiet --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	  lua5.4 $(BUSTED) -o TAP spec > build/valgrind.log 2>&1 \
	  || { tail -n 40 build/valgrind.log; exit 1; }
	@echo "valgrind on 5.4: $$(grep -c '^ok' build/valgrind.log) passed, $$(grep -c '^not ok' build/valgrind.log) failed"

# Each source compiled alone, with the flags of the Lua 5.4 build (or of the
# first Lua found), then read with nm.
LAYERS_LUA = $(firstword $(filter 5.4,$(LUAS)) $(LUAS))
layers: $(if $(LUAS),build/$(LAYERS_LUA)/messagechannel/core.so)
	@test -n "$(LUAS)" || { echo "no Lua with headers found: run make deps"; exit 1; }
	@sh .ci/layers $< $(CC) $(ALLFLAGS) $$(pkg-config --cflags $(call lua_name,$(LAYERS_LUA)))

lint:
	luacheck --quiet lua spec bench examples .ci

# The checks in .ci/*.lua run on Lua 5.4, or the first Lua installed.
CHECK_LUA = $(call lua_name,$(firstword $(filter 5.4,$(LUAS)) $(LUAS) 5.4))

# docs/meta.lua, the LuaLS definitions, declares every function, method and
# field that README.md documents.
meta:
	@$(CHECK_LUA) .ci/meta.lua

ROCK_CHECK = local mc = require "messagechannel" \
  local where = package.searchpath and package.searchpath("messagechannel.core", package.cpath) \
  assert(where == nil or where:find("/tree/", 1, true), where) \
  for _, m in ipairs(package.searchpath and {"install", "luv", "cqueues"} or {}) do \
    where = package.searchpath("messagechannel." .. m, package.path) \
    assert(where and where:find("/tree/", 1, true), "messagechannel." .. m .. " not in the tree") \
  end \
  assert(mc.deserialize(mc.serialize({1, "x"}))[2] == "x") \
  print("luarocks install on " .. _VERSION .. ": ok (" .. mc.version .. ")")

# The scm and release rockspecs agree and list every module; then each is
# valid, and the scm one installs with the README's command (offline: no
# dependency but Lua) into a throwaway tree for 5.1 and 5.4, then loads.
rock:
	@$(CHECK_LUA) .ci/rockspecs.lua
	@for r in rockspec/*.rockspec; do luarocks lint $$r || { echo "luarocks lint $$r failed"; exit 1; }; done
	@for v in $(filter 5.1 5.4,$(LUAS)); do \
	  tmp=$$(mktemp -d); \
	  cp -r src lua rockspec $$tmp; \
	  ( cd $$tmp && luarocks --lua-version=$$v --tree=$$tmp/tree make \
	      rockspec/messagechannel-scm-1.rockspec > $$tmp/log 2>&1 ) \
	    || { cat $$tmp/log; exit 1; }; \
	  eval "$$(luarocks --lua-version=$$v --tree=$$tmp/tree path)"; \
	  lua$$v -e '$(ROCK_CHECK)' \
	    || exit 1; \
	  rm -rf $$tmp; \
	done

bench: deps
	@$(MAKE) --no-print-directory run-bench

run-bench: all
	@for v in $(filter 5.4 luajit,$(LUAS)); do \
	  bin=$(SH_LUA); \
	  $(call RUN_ENV,$$v) $$bin bench/clone.lua || exit 1; \
	  echo; $(call RUN_ENV,$$v) $$bin bench/channel.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/threads.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/eventloop.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/bounded.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/broadcast.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/remote.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/nats.lua || exit 1; echo; \
	  $(call RUN_ENV,$$v) $$bin bench/collisions.lua || exit 1; echo; \
	done
	@# every other version: the in-state time against its own floor
	@for v in $(filter 5.1 5.2 5.3,$(LUAS)); do \
	  bin=$(SH_LUA); \
	  $(call RUN_ENV,$$v) $$bin bench/channel.lua || exit 1; echo; \
	done
	@for v in $(filter 5.3,$(LUAS)); do \
	  bin=$(SH_LUA); \
	  $(call RUN_ENV,$$v) $$bin bench/collisions.lua || exit 1; echo; \
	done

# What the builds write: build/ (modules, logs), and what `luarocks make`
# run in place leaves in the tree (src/*.o, messagechannel/core.so) or packs.
clean:
	rm -rf build src/*.o messagechannel/core.so messagechannel-*.rock
	@if [ -d messagechannel ]; then rmdir messagechannel || true; fi
