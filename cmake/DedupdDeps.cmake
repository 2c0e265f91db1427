# Every dependency comes through pkg-config; a missing one stops configure and
# names the Debian package that provides it. Nothing is vendored.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# dd_require(<target-suffix> <pkg-config name> <Debian package>)
# defines the imported target dd::<target-suffix>.
function(dd_require name module debpkg)
  pkg_check_modules(DD_${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT DD_${name}_FOUND)
    message(FATAL_ERROR
      "dedupd needs ${module} (pkg-config module '${module}' not found).\n"
      "Install it with:  apt-get install ${debpkg}")
  endif()
  add_library(dd::${name} ALIAS PkgConfig::DD_${name})
  message(STATUS "dependency ${module} ${DD_${name}_VERSION}")
endfunction()

dd_require(devmapper   devmapper      libdevmapper-dev)
dd_require(blkid       blkid          libblkid-dev)
dd_require(xxhash      libxxhash      libxxhash-dev)
dd_require(xgboost     xgboost        libxgboost-dev)
dd_require(microhttpd  libmicrohttpd  libmicrohttpd-dev)
# libmicrohttpd's TLS is gnutls; dd_http verifies client certificates on
# the gnutls session libmicrohttpd hands out
dd_require(gnutls      gnutls         libgnutls28-dev)
dd_require(jansson     jansson        libjansson-dev)
dd_require(rocksdb     rocksdb        librocksdb-dev)
dd_require(lz4         liblz4         liblz4-dev)
dd_require(cmocka      cmocka         libcmocka-dev)
dd_require(curl        libcurl        libcurl4-openssl-dev)
