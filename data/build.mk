# The data suite (test/data/test_data.cpp, linked in tokenizer/build.mk from
# its prerequisites) also checks the trainer's view of the loader,
# lifecycle/training_data.cpp: inputs, targets and document starts.
$(BUILD)/test_data: $(BUILD)/obj/lifecycle/training_data.o
