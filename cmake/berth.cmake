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
