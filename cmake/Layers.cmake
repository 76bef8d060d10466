# The layers of libcohort, lowest first. A layer may use only the layers below it, and the build
# enforces it:
#   includes: each layer compiles against an include tree of its own (build/layers/<layer>) that
#             holds only the public headers of its own and lower layers, plus the internal
#             headers of its own source folders; an upward #include does not compile;
#   calls:    each layer, with everything below it, is linked into a check library with
#             -Wl,--no-undefined; a call into a higher layer does not link.
# Every public header must be given to one layer (the configure step fails otherwise).

# tensor sits below comm: the collectives take its dtypes (ch_dtype in cohort/tensor.h).
set(COHORT_LAYERS runtime tensor comm kernels nn optim parallel data ckpt serve train)

# Source folders and public headers (include/cohort/<name>.h) of each layer.
set(COHORT_LAYER_runtime_DIRS src/runtime)
set(COHORT_LAYER_runtime_HEADERS status log rng runtime fs signals keys)
set(COHORT_LAYER_comm_DIRS src/comm)
set(COHORT_LAYER_comm_HEADERS comm comm_mpi watchdog)
set(COHORT_LAYER_tensor_DIRS src/tensor)
set(COHORT_LAYER_tensor_HEADERS tensor)
set(COHORT_LAYER_kernels_DIRS kernels/cpu kernels/device)
set(COHORT_LAYER_kernels_HEADERS backend kernels cuda device)
set(COHORT_LAYER_nn_DIRS src/nn)
set(COHORT_LAYER_nn_HEADERS model)
set(COHORT_LAYER_optim_DIRS src/optim)
set(COHORT_LAYER_optim_HEADERS optim)
set(COHORT_LAYER_parallel_DIRS src/parallel)
set(COHORT_LAYER_parallel_HEADERS parallel)
set(COHORT_LAYER_data_DIRS src/data)
set(COHORT_LAYER_data_HEADERS data tokenizer)
set(COHORT_LAYER_ckpt_DIRS src/ckpt)
set(COHORT_LAYER_ckpt_HEADERS ckpt)
set(COHORT_LAYER_serve_DIRS src/serve)
set(COHORT_LAYER_serve_HEADERS serve)
set(COHORT_LAYER_train_DIRS src/train)
set(COHORT_LAYER_train_HEADERS config train cohort)

# Internal headers shared by more than one layer (header-only, never installed): the HDF5
# helpers of the two layers that use HDF5.
set(COHORT_SHARED_PRIVATE_HEADERS "src/runtime/h5util.h:data,ckpt")

# External libraries every layer may use (their headers; libcohort links them).
set(COHORT_LAYER_DEPS cohort_hdf5 MPI::MPI_C PkgConfig::HWLOC PkgConfig::YAML PkgConfig::CJSON
    PkgConfig::MHD PkgConfig::GNUTLS Threads::Threads ZLIB::ZLIB ${CMAKE_DL_LIBS} m)

# ---- the header map ----------------------------------------------------------------------------
set(_all_mapped)
foreach(layer ${COHORT_LAYERS})
  list(APPEND _all_mapped ${COHORT_LAYER_${layer}_HEADERS})
endforeach()
file(GLOB _public RELATIVE ${PROJECT_SOURCE_DIR}/include/cohort CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/include/cohort/*.h)
foreach(h ${_public})
  string(REGEX REPLACE "\\.h$" "" name ${h})
  if(NOT name IN_LIST _all_mapped)
    message(FATAL_ERROR "include/cohort/${h} belongs to no layer: add it to a "
                        "COHORT_LAYER_<layer>_HEADERS list in cmake/Layers.cmake")
  endif()
endforeach()

# Layers a layer may use: itself and those below it.
function(_cohort_visible_layers layer out)
  list(FIND COHORT_LAYERS ${layer} top)
  set(result)
  foreach(i RANGE ${top})
    list(GET COHORT_LAYERS ${i} l)
    list(APPEND result ${l})
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(_cohort_link src dst)
  get_filename_component(dir ${dst} DIRECTORY)
  file(MAKE_DIRECTORY ${dir})
  file(CREATE_LINK ${src} ${dst} SYMBOLIC)
endfunction()

# ---- one object library, include tree and check per layer -------------------------------------
set(COHORT_LAYER_OBJECTS)
foreach(layer ${COHORT_LAYERS})
  set(inc ${PROJECT_BINARY_DIR}/layers/${layer})
  file(REMOVE_RECURSE ${inc})
  _cohort_visible_layers(${layer} visible)
  foreach(l ${visible})
    foreach(h ${COHORT_LAYER_${l}_HEADERS})
      _cohort_link(${PROJECT_SOURCE_DIR}/include/cohort/${h}.h ${inc}/cohort/${h}.h)
    endforeach()
  endforeach()
  set(sources)
  foreach(dir ${COHORT_LAYER_${layer}_DIRS})
    file(GLOB found CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${dir}/*.c)
    list(APPEND sources ${found})
    file(GLOB private RELATIVE ${PROJECT_SOURCE_DIR}/${dir} CONFIGURE_DEPENDS
         ${PROJECT_SOURCE_DIR}/${dir}/*.h ${PROJECT_SOURCE_DIR}/${dir}/*.inc)
    # Internal headers are included as "<folder below src/>/x.h", e.g. "nn/model_internal.h".
    string(REGEX REPLACE "^src/" "" prefix ${dir})
    foreach(p ${private})
      _cohort_link(${PROJECT_SOURCE_DIR}/${dir}/${p} ${inc}/${prefix}/${p})
    endforeach()
  endforeach()
  foreach(entry ${COHORT_SHARED_PRIVATE_HEADERS})
    string(REPLACE ":" ";" parts ${entry})
    list(GET parts 0 file)
    list(GET parts 1 users)
    string(REPLACE "," ";" users "${users}")
    if(layer IN_LIST users)
      string(REGEX REPLACE "^src/" "" rel ${file})
      _cohort_link(${PROJECT_SOURCE_DIR}/${file} ${inc}/${rel})
    endif()
  endforeach()

  add_library(cohort_${layer} OBJECT ${sources})
  set_target_properties(cohort_${layer} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  # OpenBLAS is loaded at run time (kernels/cpu/blas.c) so that the right CPU kernels can be
  # chosen before its constructor runs; only its header is needed here.
  target_include_directories(cohort_${layer} PRIVATE ${inc} ${PROJECT_BINARY_DIR}/generated
                             ${OPENBLAS_INCLUDE_DIRS})
  # -fno-math-errno: math functions never report through errno in cohort; without it sqrtf
  # keeps a scalar errno path that stops the optimizer loops from vectorising.
  # -ffp-contract=off: no implicit a*b+c -> fma, so the AVX-512, AVX2 and baseline clones of a
  # loop (kernels/cpu/simd.h) round identically and results do not depend on the CPU.
  # -fvisibility=hidden: only functions marked CH_API (the public headers) leave libcohort.
  target_compile_options(cohort_${layer} PRIVATE -fno-math-errno -ffp-contract=off
                         -fvisibility=hidden)
  target_link_libraries(cohort_${layer} PRIVATE ${COHORT_LAYER_DEPS})
  list(APPEND COHORT_LAYER_OBJECTS $<TARGET_OBJECTS:cohort_${layer}>)

  # The call check: this layer and the ones it may use, with no undefined symbol left.
  set(check_objects)
  foreach(l ${visible})
    list(APPEND check_objects $<TARGET_OBJECTS:cohort_${l}>)
  endforeach()
  add_library(cohort_layer_check_${layer} SHARED ${check_objects})
  target_link_options(cohort_layer_check_${layer} PRIVATE -Wl,--no-undefined)
  target_link_libraries(cohort_layer_check_${layer} PRIVATE ${COHORT_LAYER_DEPS})
  set_target_properties(cohort_layer_check_${layer} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/layers/checks)
endforeach()
