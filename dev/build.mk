# The GPU bundle (dev/gpu-bundle builds and checks it; dev/gpu-run runs it on a
# GPU machine): everything a GPU run needs, prebuilt here, in one folder that
# travels to the GPU machine, where nothing is built and no package is installed.
#
#   bin/train_llama        the GPU trainer for sm_80 and sm_90a, bounded mbarrier waits; no MPI (several
#                          ranks join with --rendezvous), NCCL loaded at run time (gpu/nccl_runtime.h)
#   bin/train_llama_cpu    the CPU reference build and
#   bin/train_llama_twin   the GPU step on the kernels' CPU twins, which the GPU step is checked against
#   bin/test_gpu_loop      the suite that compares them (LLAMA_GPU_TRAINER=train_llama)
#   bin/planted_hang       a kernel that never ends (dev/gpu-run --plant-hang)
#   bin/test_ptx_gpu       the emulator's raw-PTX and libcu++ atomic suites (test/emulator/test_ptx*.cu,
#                          test_cluster.cu, test_cuda_atomic.cu) for sm_90a, so that what the emulator runs is
#                          checked against the GPU
#   dev/*                  every dev/cuda program (as build/dev/ has them)
#   data/kjv.txt           the text they train on, and data/kjv-llama3/ the same text in token shards of
#                          the Llama 3 tokenizer (data/llama3.tiktoken), for the 0.4B model's throughput
#   MANIFEST.md            what was built, from which commit, and what each binary needs
#
# Only cuBLASLt, the C and C++ runtimes, libm, libgomp and the loader are left
# dynamic: the small libraries (xxhash, PCRE2, zstd, zlib, Boost.Context) and the
# CUDA runtime are linked statically, and debug information is stripped.

GPU_BUNDLE        := $(BUILD)/gpu-bundle
# A wait on an mbarrier that is not done after this many nanoseconds traps with a
# message (kernels/ptx.h), so a pipeline that never completes fails in about a
# second instead of hanging. The GPU dev programs and the bundle are built so.
MBARRIER_TIMEOUT_NS := 1000000000
BUNDLE_ARCHS      := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a
BUNDLE_STATIC     := -Wl,--as-needed -Wl,-Bstatic -lxxhash -lpcre2-8 -lzstd -lz -Wl,-Bdynamic
BUNDLE_BINS       := $(addprefix $(GPU_BUNDLE)/bin/,train_llama train_llama_cpu train_llama_twin test_gpu_loop planted_hang \
                                                   test_ptx_gpu)

ifeq ($(HAVE_NVCC)$(HAVE_CUBLASLT)$(HAVE_CLI11)$(HAVE_JSON)$(HAVE_BOOST_CONTEXT)$(HAVE_CATCH2)$(HAVE_BIBLE)$(HAVE_VENV),yesyesyesyesyesyesyesyes)
ALL_TARGETS += $(GPU_BUNDLE)/MANIFEST.md
TEST_BINS   += $(if $(HAVE_NCCL),$(BUILD)/nccl_runtime_check)
TEST_CMDS   += test/gpu-run/test-gpu-bundle
endif
# The rehearsal of dev/gpu-run (emulated and CPU builds, tiny shapes, a planted hang).
ifeq ($(HAVE_CLI11)$(HAVE_JSON)$(HAVE_BOOST_CONTEXT)$(HAVE_CATCH2)$(HAVE_BIBLE)$(HAVE_EMU_CLANG),yesyesyesyesyesyes)
TEST_CMDS   += test/gpu-run/test-gpu-run
endif

.PHONY: gpu-bundle
gpu-bundle: $(GPU_BUNDLE)/MANIFEST.md

# No MPI, NCCL loaded at run time, bounded waits; the same source as build/train_llama.
BUNDLE_NCCL := $(if $(HAVE_NCCL),-DLLAMA_NCCL -DLLAMA_NCCL_DLOPEN)
$(BUILD)/bundle/train_llama.o: train_llama.cu
	@mkdir -p $(@D)
	$(NVCC) $(filter-out -gencode arch=%,$(NVCCFLAGS)) $(BUNDLE_ARCHS) -DLLAMA_MBARRIER_TIMEOUT_NS=$(MBARRIER_TIMEOUT_NS) \
	  $(BUNDLE_NCCL) -MMD -MP -c $< -o $@
$(GPU_BUNDLE)/bin/train_llama: $(BUILD)/bundle/train_llama.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ -fopenmp -L$(CUDA_HOME)/lib64 -lcudart_static -lcublasLt $(BUNDLE_STATIC) -ldl -lrt -lpthread
	strip --strip-debug $@

# The CPU reference build and the twin build, without MPI.
$(BUILD)/bundle/train_llama_cpu.o: train_llama.cu
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -DLLAMA_BACKEND_CPU -x c++ -c $< -o $@
$(GPU_BUNDLE)/bin/train_llama_cpu: $(BUILD)/bundle/train_llama_cpu.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ -fopenmp $(BUNDLE_STATIC)
	strip --strip-debug $@
$(BUILD)/bundle/train_llama_twin.o: $(BUILD)/emu/gen/train_llama.cpp $(EMU_GEN_HEADERS)
	@mkdir -p $(@D)
	$(CXX) $(EMU_PLAIN_FLAGS) -fopenmp -DLLAMA_CPU_TWINS -include emu/prelude.h -c $< -o $@
$(GPU_BUNDLE)/bin/train_llama_twin: $(BUILD)/bundle/train_llama_twin.o $(HOST_OBJS) $(TOK_LIB_OBJS) $(EMU_PLAIN_LIB)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ -fopenmp $(BUNDLE_STATIC) -Wl,-Bstatic -lboost_context -Wl,-Bdynamic -lpthread
	strip --strip-debug $@

$(GPU_BUNDLE)/bin/test_gpu_loop: $(CATCH_MAIN) $(BUILD)/obj/test/test_gpu_loop.o $(HOST_OBJS) $(TOK_LIB_OBJS)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ -fopenmp $(BUNDLE_STATIC)
	strip --strip-debug $@

$(GPU_BUNDLE)/bin/planted_hang: test/gpu-run/planted_hang.cu
	@mkdir -p $(@D)
	$(NVCC) $(filter-out -gencode arch=%,$(NVCCFLAGS)) $(BUNDLE_ARCHS) -DLLAMA_MBARRIER_TIMEOUT_NS=$(MBARRIER_TIMEOUT_NS) \
	  $< -o $@
	strip --strip-debug $@
$(GPU_BUNDLE)/bin/test_ptx_gpu: $(CATCH_MAIN) $(EMU_NVCC_SUITE_OBJS)
	@mkdir -p $(@D)
	$(CXX) $^ -o $@ -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lpthread
	strip --strip-debug $@

$(GPU_BUNDLE)/data/kjv.txt:
	@mkdir -p $(@D)
	bible -f Gen1:1-Rev22:21 > $@.tmp && mv $@.tmp $@
# One document per verse, 1% held out for validation.
$(GPU_BUNDLE)/data/llama3.tiktoken: $(TOKENIZERS)
	@mkdir -p $(@D)
	cp $(BUILD)/tokenizers/llama3/tokenizer.tiktoken $@
$(GPU_BUNDLE)/data/kjv-llama3/train_000000.tok: $(GPU_BUNDLE)/data/kjv.txt $(GPU_BUNDLE)/data/llama3.tiktoken \
                                                $(BUILD)/tokenize
	rm -rf $(@D)
	$(BUILD)/tokenize shards --quiet --tokenizer $(GPU_BUNDLE)/data/llama3.tiktoken --pattern llama3 \
	  --delimiter '\n' --val-fraction 0.01 --out $(@D) $<

# Loads every NCCL function the bundle's trainer calls, as it would (test/gpu-run/test-gpu-bundle).
$(BUILD)/nccl_runtime_check: test/gpu-run/nccl_runtime_check.cpp gpu/nccl_runtime.h
	$(CXX) -std=c++17 -Wall -Wextra -Werror -I. -I$(CUDA_HOME)/include $< -o $@ -ldl

# The manifest is written last, by dev/gpu-bundle's check: a bundle that fails
# the check has none, and dev/gpu-run refuses it.
$(GPU_BUNDLE)/MANIFEST.md: $(BUNDLE_BINS) $(DEV_CUDA_BINS) $(GPU_BUNDLE)/data/kjv.txt \
                           $(GPU_BUNDLE)/data/kjv-llama3/train_000000.tok dev/gpu-bundle
	@rm -rf $(GPU_BUNDLE)/dev && mkdir -p $(GPU_BUNDLE)/dev
	for f in $(DEV_CUDA_BINS); do strip --strip-debug -o $(GPU_BUNDLE)/dev/$$(basename $$f) $$f || exit 1; done
	dev/gpu-bundle --check $(GPU_BUNDLE)
