# Sanitizers as options, one CI job each (after libuv's CMakeLists.txt).
# ASan+UBSan run without recovery: the first report fails the test.
option(DD_ASAN "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(DD_TSAN "Build with ThreadSanitizer" OFF)

if(DD_ASAN AND DD_TSAN)
  message(FATAL_ERROR "DD_ASAN and DD_TSAN cannot be combined")
endif()
if(DD_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
if(DD_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
