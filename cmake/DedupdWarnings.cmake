# Picky warnings (after curl's CMake/PickyWarnings.cmake and git's config.mak.dev).
# DD_WERROR turns them into errors; CI sets it.
option(DD_WERROR "Treat warnings as errors" OFF)

set(DD_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wconversion -Wsign-conversion -Wformat=2
  -Wmissing-prototypes -Wstrict-prototypes -Wwrite-strings -Wvla
  -Wpointer-arith -Wcast-qual -Wundef -Wnull-dereference -Wdouble-promotion
  -Wimplicit-fallthrough -Wold-style-definition)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  list(APPEND DD_WARNING_FLAGS -Wduplicated-cond -Wlogical-op -Wjump-misses-init)
endif()
if(DD_WERROR)
  list(APPEND DD_WARNING_FLAGS -Werror)
endif()

# dd_warnings(<target>) applies the set to one of our own targets.
function(dd_warnings target)
  target_compile_options(${target} PRIVATE ${DD_WARNING_FLAGS})
endfunction()
