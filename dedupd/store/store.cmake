# dedupd/store: the time-series and observation store on RocksDB. Only
# dedupd/ links RocksDB; store-rocks.c is the one file that reads its errors.
add_library(dd_store STATIC
  ${CMAKE_CURRENT_LIST_DIR}/store.c
  ${CMAKE_CURRENT_LIST_DIR}/store-rocks.c)
target_link_libraries(dd_store PUBLIC dd_common PRIVATE dd::rocksdb Threads::Threads)
dd_warnings(dd_store)
