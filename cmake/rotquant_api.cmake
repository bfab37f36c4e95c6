# The public C API (include/rotquant.h, src/api/): the shared library librotquant.so, the
# install rules (libraries, header, CLI, pkg-config file) and the example programs.
# Included from the top-level CMakeLists.txt after the targets rotquant and rotquant-cli.
include(GNUInstallDirs)

file(STRINGS ${CMAKE_SOURCE_DIR}/include/rotquant.h RQ_API_VERSION_LINES
     REGEX "^#define ROTQUANT_API_VERSION_(MAJOR|MINOR|PATCH) [0-9]+$")
foreach(line ${RQ_API_VERSION_LINES})
  string(REGEX REPLACE "^#define ROTQUANT_API_VERSION_([A-Z]+) ([0-9]+)$" "\\1;\\2" kv "${line}")
  list(GET kv 0 k)
  list(GET kv 1 v)
  set(RQ_API_VERSION_${k} ${v})
endforeach()
set(RQ_API_VERSION "${RQ_API_VERSION_MAJOR}.${RQ_API_VERSION_MINOR}.${RQ_API_VERSION_PATCH}")

# The static library's objects go into the shared one: position-independent code, and calls
# inside a file may still be inlined (no ELF interposition of our own functions).
set_target_properties(rotquant PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_options(rotquant PRIVATE $<$<COMPILE_LANGUAGE:C>:-fno-semantic-interposition>)

# librotquant.so.MAJOR: the API file plus what it needs from the static library; only the
# rotquant_* symbols are exported (src/api/rotquant.map), the rest stays inside.
add_library(rotquant_shared SHARED ${CMAKE_SOURCE_DIR}/src/api/rotquant.c)
target_link_libraries(rotquant_shared PRIVATE rotquant)
target_include_directories(rotquant_shared PUBLIC $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_options(rotquant_shared PRIVATE -Wl,--version-script=${CMAKE_SOURCE_DIR}/src/api/rotquant.map)
set_target_properties(rotquant_shared PROPERTIES OUTPUT_NAME rotquant VERSION ${RQ_API_VERSION}
                      SOVERSION ${RQ_API_VERSION_MAJOR} LINK_DEPENDS ${CMAKE_SOURCE_DIR}/src/api/rotquant.map)

# pkg-config: relocatable (prefix found from the .pc file's own directory), so that
# `cmake --install build --prefix DIR` gives a working file under any DIR. Libs.private: what
# librotquant.a needs besides (librotquant.so records them itself), MPI's with RQ_MPI.
set(RQ_PC_LIBS_PRIVATE "")
set(RQ_PC_LIBS ${LAPACKE_LIB} ${OPENBLAS_LIB} ${PCRE2_LIB})
if(RQ_MPI)
  list(APPEND RQ_PC_LIBS ${MPI_C_LIBRARIES})
endif()
foreach(lib ${RQ_PC_LIBS})
  get_filename_component(name ${lib} NAME_WE)
  string(REGEX REPLACE "^lib" "" name ${name})
  string(APPEND RQ_PC_LIBS_PRIVATE " -l${name}")
endforeach()
string(APPEND RQ_PC_LIBS_PRIVATE " -lpthread -lm")
file(RELATIVE_PATH RQ_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${CMAKE_SOURCE_DIR}/src/api/rotquant.pc.in ${CMAKE_BINARY_DIR}/rotquant.pc @ONLY)

install(TARGETS rotquant rotquant_shared
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS rotquant-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/rotquant.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_BINARY_DIR}/rotquant.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# examples/*.c, each an executable linked to the shared library with nothing but rotquant.h.
file(GLOB RQ_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.c)
foreach(src ${RQ_EXAMPLES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(example_${name} ${src})
  set_target_properties(example_${name} PROPERTIES OUTPUT_NAME ${name} RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/examples)
  target_link_libraries(example_${name} PRIVATE rotquant_shared)
endforeach()
