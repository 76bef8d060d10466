# External dependencies, all from Debian packages (see .ci/run).
find_package(MPI REQUIRED COMPONENTS C)
# Which MPI flavour the C wrapper belongs to (Debian installs Open MPI and MPICH side by side;
# the version string FindMPI reports is not always filled in, the include path always is).
if("${MPI_C_HEADER_DIR};${MPI_C_COMPILER_INCLUDE_DIRS};${MPI_C_INCLUDE_DIRS}" MATCHES "mpich")
  set(COHORT_MPI_FLAVOR mpich)
else()
  set(COHORT_MPI_FLAVOR openmpi)
endif()
message(STATUS "cohort: MPI flavour ${COHORT_MPI_FLAVOR} (${MPI_C_COMPILER})")

# Parallel HDF5 matching the MPI flavour. Debian installs the Open MPI and MPICH builds side by
# side; HDF5_PREFER_PARALLEL + the flavour's h5pcc picks the right one.
set(HDF5_PREFER_PARALLEL TRUE)
if(NOT HDF5_C_COMPILER_EXECUTABLE)
  if(COHORT_MPI_FLAVOR STREQUAL "mpich" AND EXISTS /usr/bin/h5pcc.mpich)
    set(HDF5_C_COMPILER_EXECUTABLE /usr/bin/h5pcc.mpich)
  elseif(EXISTS /usr/bin/h5pcc.openmpi)
    set(HDF5_C_COMPILER_EXECUTABLE /usr/bin/h5pcc.openmpi)
  endif()
endif()
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "cohort needs parallel HDF5 (libhdf5-openmpi-dev or libhdf5-mpich-dev); "
                      "found a serial build at ${HDF5_C_INCLUDE_DIRS}")
endif()
add_library(cohort_hdf5 INTERFACE)
target_include_directories(cohort_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_compile_definitions(cohort_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} H5_USE_110_API)
target_link_libraries(cohort_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)

find_package(PkgConfig REQUIRED)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
pkg_check_modules(OPENBLAS REQUIRED openblas)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
# GnuTLS: libmicrohttpd serves HTTPS with it; cohort checks the certificate and key with it
# before listening and hashes API keys for the access log (src/serve/tls.c, access_log.c).
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)
find_library(COHORT_OPENBLAS_LIBRARY NAMES openblas HINTS ${OPENBLAS_LIBRARY_DIRS} REQUIRED)
get_filename_component(COHORT_OPENBLAS_REALPATH ${COHORT_OPENBLAS_LIBRARY} REALPATH)

# CUDA: AUTO turns it on when a toolkit is found: enabling the language checks that the
# toolkit works, and kernels/cuda is built (docs/cuda.md).
set(COHORT_CUDA_ENABLED OFF)
if(NOT COHORT_CUDA STREQUAL "OFF")
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80;90") # "native" fails on machines without a GPU
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    # NCCL ships beside the toolkit here but has no CMake package: find_library.
    find_library(COHORT_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
    set(COHORT_CUDA_ENABLED ON)
  elseif(COHORT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "COHORT_CUDA=ON but no CUDA toolkit was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()

# The host emulation of CUDA (kernels/cuda/emu, docs/cuda-emulation.md): the same kernels built
# by the C++ compiler and run on the CPU, so CI tests the CUDA backend without a GPU. It needs
# only the CUDA, cuBLAS and NCCL headers (no nvcc, no driver). AUTO: on when they are found.
set(COHORT_CUDA_EMU AUTO CACHE STRING "CUDA host emulation: AUTO (on when the CUDA and NCCL headers are found), ON, OFF")
set_property(CACHE COHORT_CUDA_EMU PROPERTY STRINGS AUTO ON OFF)
set(COHORT_CUDA_EMU_ENABLED OFF)
if(NOT COHORT_CUDA_EMU STREQUAL "OFF")
  find_path(COHORT_CUDA_RUNTIME_INCLUDE_DIR cuda_runtime_api.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_path(COHORT_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  if(COHORT_CUDA_RUNTIME_INCLUDE_DIR AND COHORT_NCCL_INCLUDE_DIR)
    enable_language(CXX)
    set(COHORT_CUDA_EMU_ENABLED ON)
  elseif(COHORT_CUDA_EMU STREQUAL "ON")
    message(FATAL_ERROR "COHORT_CUDA_EMU=ON but cuda_runtime_api.h or nccl.h was not found "
                        "(set COHORT_CUDA_RUNTIME_INCLUDE_DIR / COHORT_NCCL_INCLUDE_DIR)")
  endif()
endif()

# pkg-config name of the MPI the library was built against (for cohort.pc's Requires).
if(COHORT_MPI_FLAVOR STREQUAL "mpich")
  set(COHORT_PC_MPI mpich)
else()
  set(COHORT_PC_MPI ompi-c)
endif()
