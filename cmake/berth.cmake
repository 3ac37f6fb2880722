# berth_module(NAME SOURCES ... DEPS ...): a static library berth_NAME whose headers are
# included as "NAME/header.h" relative to src/.
function(berth_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(berth_${name} STATIC ${ARG_SOURCES})
  target_include_directories(berth_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(berth_${name} PUBLIC ${ARG_DEPS})
endfunction()

# berth_test(NAME SOURCES ... DEPS ...): a GoogleTest binary registered with CTest.
function(berth_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  if(NOT BERTH_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
endfunction()

include(${CMAKE_CURRENT_LIST_DIR}/embed.cmake)

# berth_embed(TARGET NAME FILES ... BASE DIR): compiles FILES into TARGET as an array
# `berth::embedded::NAME` of {path relative to DIR, contents}, so that one binary carries its
# scaffolds and docs. CMake re-runs when any of the files changes.
function(berth_embed target name)
  cmake_parse_arguments(ARG "" "BASE" "FILES" ${ARGN})
  foreach(f ${ARG_FILES})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${f})
  endforeach()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/embedded_${name}.cc)
  berth_write_embedded(${out} ${name} ${ARG_BASE} ${ARG_FILES})
  target_sources(${target} PRIVATE ${out})
endfunction()

# berth_fuzz(NAME SOURCES ... DEPS ... SEEDS DIR): a libFuzzer target, built in the clang
# sanitizer build only, that CTest runs for 10 s from the seeds in DIR (new inputs go to a
# corpus in the build tree, never into the sources).
function(berth_fuzz name)
  cmake_parse_arguments(ARG "" "SEEDS" "SOURCES;DEPS" ${ARGN})
  if(NOT BERTH_BUILD_TESTS OR NOT BERTH_SANITIZE OR NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set(corpus ${CMAKE_CURRENT_BINARY_DIR}/${name}_corpus)
  file(MAKE_DIRECTORY ${corpus})
  add_test(NAME ${name} COMMAND ${name} -max_total_time=10 -rss_limit_mb=2048 -timeout=10
                                ${corpus} ${ARG_SEEDS})
endfunction()
