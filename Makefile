# Thin wrapper over CMake for the README's two commands:
#   make demo   train the digits MLP on 2 MPI ranks
#   make test   build and run the whole test suite
BUILD ?= build
NP ?= 2
JOBS ?= $(shell nproc)
COHORT = $(BUILD)/cohort
DIGITS = examples/digits/digits.h5

.PHONY: all deps build demo test data clean
all: build

deps:
	@.ci/install-deps.sh

build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

$(DIGITS): examples/digits/digits.csv.gz | build
	$(COHORT) data csv $< $@ --val-fraction 0.2 --seed 0

data: build $(DIGITS)

demo: data
	launchers/mpirun.sh $(NP) $(COHORT) train configs/mlp-digits.yaml

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

clean:
	rm -rf $(BUILD) $(DIGITS)
