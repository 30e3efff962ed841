# The CPU emulator of the CUDA sources (see emulator/README.md).
#
# A CUDA source X.cu is first rewritten (emu_rewrite: <<<>>> launches and
# __shared__ declarations) into $(BUILD)/emu/gen/X.cpp, then compiled against
# emulator/include in one of three modes:
#   plain  g++, for results
#   tsan   clang++-14 -fsanitize=thread, races reported through the fiber API
#   asan   clang++-14 -fsanitize=address,undefined,bounds, out-of-bounds accesses
# Each mode links its own build of the emulator library.

EMU_CLANG     ?= clang++-14
HAVE_BOOST_CONTEXT := $(if $(wildcard /usr/include/boost/context/detail/fcontext.hpp),yes)
HAVE_EMU_CLANG := $(shell command -v $(EMU_CLANG) >/dev/null 2>&1 && $(EMU_CLANG) -print-file-name=libclang_rt.tsan-x86_64.a 2>/dev/null | grep -q / && test -f "$$($(EMU_CLANG) -print-file-name=libclang_rt.tsan-x86_64.a)" && echo yes)
# LLVM's Archer, beside the checker's libomp: scripts/emu-run --tsan links it into -fopenmp programs.
EMU_ARCHER    := $(if $(HAVE_EMU_CLANG),$(wildcard $(abspath $(shell $(EMU_CLANG) -print-resource-dir)/../..)/libarcher.so))

# Headers with kernels (kernels/*.h, test/emulator/*.cuh) are rewritten too, into
# $(BUILD)/emu/gen, which comes first on the include path.
EMU_GEN_HEADERS := $(patsubst %,$(BUILD)/emu/gen/%,$(wildcard kernels/*.h kernels/*.cuh kernels/*/*.cuh gpu/*.cuh \
                     test/emulator/*.cuh))
EMU_INC       := -I$(BUILD)/emu/gen -I. -Iemulator/include
# The test scripts find the binaries through this.
export EMU_TEST_BUILD := $(BUILD)
EMU_LIB_SRCS  := emulator/src/scheduler.cpp emulator/src/runtime.cpp emulator/src/cublaslt.cpp
EMU_LIB_SRCS  += emulator/src/cublas.cpp
EMU_LIB_SRCS  += emulator/src/ptx.cpp
EMU_REWRITE   := $(BUILD)/emu/emu_rewrite
EMU_LIBS      := -lboost_context -lpthread

# -Wno-psabi: kernels that take a CUtensorMap (64-byte aligned) by value are
# ordinary functions here, and g++ notes that the ABI for such parameters changed in GCC 4.6.
EMU_PLAIN_FLAGS := -std=c++17 -O2 -g -Wall -Wextra -Werror -Wno-unknown-pragmas -Wno-psabi -MMD -MP $(EMU_INC)
EMU_CLANG_BASE  := -std=c++17 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-psabi -MMD -MP $(EMU_INC)
EMU_TSAN_FLAGS  := $(EMU_CLANG_BASE) -DEMU_TSAN -fsanitize=thread
EMU_ASAN_FLAGS  := $(EMU_CLANG_BASE) -DEMU_ASAN -fsanitize=address,undefined -fsanitize=bounds -fno-sanitize-recover=undefined

ifeq ($(HAVE_BOOST_CONTEXT),yes)

ALL_TARGETS += $(EMU_REWRITE)

$(EMU_REWRITE): emulator/tools/emu_rewrite.cpp
	@mkdir -p $(@D)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror $< -o $@

# Rewritten sources keep the .cu file's line numbers (#line), so reports name the .cu lines.
# --gen: every header a source includes with #include "..." (next to it, or from
# the project root, relative paths included) is rewritten too, into
# $(BUILD)/emu/gen/<its path> (headers outside the project: .../gen/abs/<path>).
# The rewriter leaves a file whose text is unchanged as it is (scripts/emu-run
# goes by the times); touch tells make the target is done.
EMU_REWRITE_FLAGS := --gen $(BUILD)/emu/gen --root . -I .
$(BUILD)/emu/gen/%.cpp: %.cu $(EMU_REWRITE)
	@mkdir -p $(@D)
	$(EMU_REWRITE) $(EMU_REWRITE_FLAGS) $< $@ && touch $@
$(BUILD)/emu/gen/%.h: %.h $(EMU_REWRITE)
	@mkdir -p $(@D)
	$(EMU_REWRITE) $(EMU_REWRITE_FLAGS) $< $@ && touch $@
$(BUILD)/emu/gen/%.cuh: %.cuh $(EMU_REWRITE)
	@mkdir -p $(@D)
	$(EMU_REWRITE) $(EMU_REWRITE_FLAGS) $< $@ && touch $@

# ---- the emulator library, one build per mode -------------------------------
$(BUILD)/emu/plain/lib/%.o: emulator/src/%.cpp
	@mkdir -p $(@D)
	$(CXX) $(EMU_PLAIN_FLAGS) -c $< -o $@
# The scheduler's bookkeeping is never instrumented for races (it is not kernel memory traffic).
$(BUILD)/emu/tsan/lib/scheduler.o: emulator/src/scheduler.cpp
	@mkdir -p $(@D)
	$(EMU_CLANG) $(filter-out -fsanitize=thread,$(EMU_TSAN_FLAGS)) -c $< -o $@
$(BUILD)/emu/tsan/lib/%.o: emulator/src/%.cpp
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_TSAN_FLAGS) -c $< -o $@
$(BUILD)/emu/asan/lib/%.o: emulator/src/%.cpp
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_ASAN_FLAGS) -c $< -o $@

EMU_PLAIN_LIB := $(EMU_LIB_SRCS:emulator/src/%.cpp=$(BUILD)/emu/plain/lib/%.o)
EMU_TSAN_LIB  := $(EMU_LIB_SRCS:emulator/src/%.cpp=$(BUILD)/emu/tsan/lib/%.o)
EMU_ASAN_LIB  := $(EMU_LIB_SRCS:emulator/src/%.cpp=$(BUILD)/emu/asan/lib/%.o)

# ---- CUDA sources compiled for the emulator ----------------------------------
$(BUILD)/emu/plain/%.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(CXX) $(EMU_PLAIN_FLAGS) -include emu/prelude.h -c $< -o $@
$(BUILD)/emu/tsan/%.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_TSAN_FLAGS) -include emu/prelude.h -c $< -o $@
$(BUILD)/emu/asan/%.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_ASAN_FLAGS) -include emu/prelude.h -c $< -o $@
# The same sources with the bug planted (-DPLANTED_BUG).
$(BUILD)/emu/plain/%.bug.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(CXX) $(EMU_PLAIN_FLAGS) -DPLANTED_BUG -include emu/prelude.h -c $< -o $@
$(BUILD)/emu/tsan/%.bug.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_TSAN_FLAGS) -DPLANTED_BUG -include emu/prelude.h -c $< -o $@
$(BUILD)/emu/asan/%.bug.o: $(BUILD)/emu/gen/%.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(EMU_CLANG) $(EMU_ASAN_FLAGS) -DPLANTED_BUG -include emu/prelude.h -c $< -o $@

$(BUILD)/emu/plain/bin/%: $(BUILD)/emu/plain/%.o $(EMU_PLAIN_LIB)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ $(EMU_LIBS)
$(BUILD)/emu/tsan/bin/%: $(BUILD)/emu/tsan/%.o $(EMU_TSAN_LIB)
	@mkdir -p $(@D)
	$(EMU_CLANG) -fsanitize=thread $^ -o $@ $(EMU_LIBS)
$(BUILD)/emu/asan/bin/%: $(BUILD)/emu/asan/%.o $(EMU_ASAN_LIB)
	@mkdir -p $(@D)
	$(EMU_CLANG) -fsanitize=address,undefined $^ -o $@ $(EMU_LIBS)

# ---- the emulator's own test suite (Catch2) ----------------------------------
EMU_TEST_CU := $(wildcard test/emulator/test_*.cu)
EMU_TEST_OBJS := $(EMU_TEST_CU:%.cu=$(BUILD)/emu/plain/%.o)
ifeq ($(HAVE_CATCH2),yes)
TEST_BINS += $(BUILD)/test_emulator
TEST_CMDS += test/emulator/run-suite
$(BUILD)/test_emulator: $(CATCH_MAIN) $(EMU_TEST_OBJS) $(EMU_PLAIN_LIB)
	$(CXX) $^ -o $@ $(EMU_LIBS) $(LDFLAGS)
# The same suite under both checkers: it must run clean (no false reports).
ifeq ($(HAVE_EMU_CLANG),yes)
TEST_BINS += $(BUILD)/test_emulator_tsan $(BUILD)/test_emulator_asan
TEST_CMDS += test/emulator/run-suite-tsan test/emulator/run-suite-asan
$(BUILD)/test_emulator_tsan: $(CATCH_MAIN) $(EMU_TEST_CU:%.cu=$(BUILD)/emu/tsan/%.o) $(EMU_TSAN_LIB)
	$(EMU_CLANG) -fsanitize=thread $^ -o $@ $(EMU_LIBS)
$(BUILD)/test_emulator_asan: $(CATCH_MAIN) $(EMU_TEST_CU:%.cu=$(BUILD)/emu/asan/%.o) $(EMU_ASAN_LIB)
	$(EMU_CLANG) -fsanitize=address,undefined $^ -o $@ $(EMU_LIBS)
endif
endif

# ---- the NCCL stand-in, over MPI ---------------------------------------------
ifeq ($(HAVE_MPI)$(HAVE_CATCH2),yesyes)
EMU_MPI_CFLAGS := $(shell mpicxx --showme:compile 2>/dev/null) -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX
EMU_MPI_LIBS   := $(shell mpicxx --showme:link 2>/dev/null)
TEST_BINS += $(BUILD)/test_nccl
TEST_CMDS += test/emulator/run-nccl
$(BUILD)/emu/plain/lib/nccl.o $(BUILD)/emu/plain/test/emulator/mpi_nccl.o: EMU_PLAIN_FLAGS += $(EMU_MPI_CFLAGS)
$(BUILD)/test_nccl: $(BUILD)/emu/plain/test/emulator/mpi_nccl.o $(BUILD)/emu/plain/lib/nccl.o $(EMU_PLAIN_LIB)
	$(CXX) $^ -o $@ $(EMU_MPI_LIBS) $(EMU_LIBS)
endif

# ---- planted bugs and their correct twins --------------------------------------
# Each program under test/emulator/planted/ is built as its correct twin and with
# -DPLANTED_BUG; test/emulator/planted-bugs runs both and checks what is reported.
EMU_PLANTED := $(basename $(notdir $(wildcard test/emulator/planted/*.cu)))
EMU_PLANTED_PLAIN := $(foreach p,$(EMU_PLANTED),$(BUILD)/emu/plain/bin/test/emulator/planted/$(p) $(BUILD)/emu/plain/bin/test/emulator/planted/$(p).bug)
TEST_BINS += $(EMU_PLANTED_PLAIN)
ifeq ($(HAVE_EMU_CLANG),yes)
EMU_PLANTED_TSAN := $(foreach p,race_reduction race_between_blocks warp_exchange tma_missing_full_wait tma_ring_missing_empty_wait mbarrier_init_no_sync grid_missing_sync tile_missing_sync cluster_missing_sync flag_weak_store,$(BUILD)/emu/tsan/bin/test/emulator/planted/$(p) $(BUILD)/emu/tsan/bin/test/emulator/planted/$(p).bug)
EMU_PLANTED_ASAN := $(foreach p,shared_oob global_oob dynamic_shared_oob local_oob cluster_exit_early,$(BUILD)/emu/asan/bin/test/emulator/planted/$(p) $(BUILD)/emu/asan/bin/test/emulator/planted/$(p).bug)
TEST_BINS += $(EMU_PLANTED_TSAN) $(EMU_PLANTED_ASAN)
endif
TEST_CMDS += test/emulator/planted-bugs
# scripts/emu-run on a program outside the project with kernels in ../../lib/ headers.
TEST_CMDS += test/emulator/run-emu-run-headers

endif  # HAVE_BOOST_CONTEXT

# CUDA sources of the emulator's tests also compile with nvcc for every target.
ifeq ($(HAVE_NVCC),yes)
EMU_NVCC_PLANTED := $(wildcard test/emulator/planted/*.cu)
EMU_NVCC_SRCS := $(EMU_NVCC_PLANTED) $(wildcard test/emulator/nvcc_*.cu)
EMU_NVCC_OBJS := $(EMU_NVCC_SRCS:%.cu=$(BUILD)/nvcc/%.o) $(EMU_NVCC_PLANTED:%.cu=$(BUILD)/nvcc/%.bug.o)
ALL_TARGETS += $(EMU_NVCC_OBJS)
# With dependency files (-MF, read by the Makefile's -include), so header edits rebuild them.
$(BUILD)/nvcc/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@
$(BUILD)/nvcc/%.bug.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -DPLANTED_BUG -MMD -MP -MF $(@:.o=.d) -c $< -o $@
endif

# The raw-PTX suites too (and libcu++'s atomics), for sm_90a only (wgmma, TMA and clusters are Hopper's),
# so that ptxas checks every asm string the emulator runs; the GPU bundle links
# them into bin/test_ptx_gpu (dev/build.mk), which runs them on a GPU.
ifeq ($(HAVE_NVCC)$(HAVE_CATCH2),yesyes)
EMU_NVCC_SUITES := $(addprefix test/emulator/,test_ptx.cu test_ptx_asm.cu test_ptx_asm2.cu test_ptx_wgmma.cu \
                                              test_cluster.cu test_ptx_sync.cu test_cuda_atomic.cu)
EMU_NVCC_SUITE_OBJS := $(EMU_NVCC_SUITES:%.cu=$(BUILD)/nvcc90/%.o)
ALL_TARGETS += $(EMU_NVCC_SUITE_OBJS)
$(BUILD)/nvcc90/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(filter-out -gencode arch=%,$(NVCCFLAGS)) -gencode arch=compute_90a,code=sm_90a -MMD -MP -MF $(@:.o=.d) \
	  -c $< -o $@
endif

# Keep the rewritten sources and objects (make would delete them as intermediates).
.PRECIOUS: $(BUILD)/emu/gen/%.cpp $(BUILD)/emu/gen/%.h $(BUILD)/emu/gen/%.cuh $(BUILD)/emu/plain/%.o $(BUILD)/emu/tsan/%.o $(BUILD)/emu/asan/%.o \
          $(BUILD)/emu/plain/%.bug.o $(BUILD)/emu/tsan/%.bug.o $(BUILD)/emu/asan/%.bug.o
