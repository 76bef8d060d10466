# Thin wrapper over CMake for the README's two commands:
#   make demo   train the digits MLP on 2 MPI ranks, serve it from them, query it
#   make test   build and run the whole test suite
#   make gpt    train the GPT example on Shakespeare and generate from it
BUILD ?= build
NP ?= 2
JOBS ?= $(shell nproc)
COHORT = $(BUILD)/cohort
DIGITS = examples/digits/digits.h5
SHAKESPEARE = examples/shakespeare/shakespeare.h5

.PHONY: all deps build demo test data data-text gpt clean
all: build

deps:
	@.ci/install-deps.sh

build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

$(DIGITS): examples/digits/digits.csv.gz | build
	$(COHORT) data csv $< $@ --val-fraction 0.2 --seed 0

data: build $(DIGITS)

$(SHAKESPEARE): examples/shakespeare/input.txt.gz | build
	$(COHORT) data text $< $@ --val-fraction 0.1

data-text: build $(SHAKESPEARE)

# The GPT example: train gpt-tiny on 2 ranks, then generate from its last checkpoint.
gpt: data-text
	launchers/mpirun.sh $(NP) $(COHORT) train configs/gpt-tiny.yaml run.resume=never
	$(COHORT) generate runs/gpt-tiny/checkpoints --prompt "ROMEO:" --max-tokens 200 --temperature 0.8 --top-k 40

# Train on NP ranks, serve from the same processes, query, stop (examples/digits/demo.sh).
demo: data
	examples/digits/demo.sh $(BUILD) $(NP)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

clean:
	rm -rf $(BUILD) $(DIGITS) $(SHAKESPEARE)
