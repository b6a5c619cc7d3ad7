# regentra_add_plugin(NAME SOURCES ... [LIBS ...] [NO_INSTALL])
# One MODULE per plugin: no "lib" prefix, only the entry symbol visible, and
# every symbol resolved at link time so a missing one fails the build, not
# the load.
function(regentra_add_plugin name)
  cmake_parse_arguments(P "NO_INSTALL" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} MODULE ${P_SOURCES})
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden
                        LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/plugins)
  target_link_libraries(${name} PRIVATE regentra::sdk ${P_LIBS})
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  if(NOT P_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${REGENTRA_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
