# Installation and the Debian package (docs/install.md). CPack's DEB generator rather than a
# debian/ folder with debhelper: the package is built from the same CMake build as everything else
# (no second build system to keep in step), its dependencies are computed by dpkg-shlibdeps from
# the binaries, and its maintainer scripts are two short files in deploy/debian/.
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr
#   cmake --build build-deb -j && (cd build-deb && cpack)   ->  totalplace_VERSION_ARCH.deb
include(GNUInstallDirs)

# ---------------------------------------------------------------- manual pages
# The daemons' pages get their CONFIGURATION section from the settings tables (man_keys), the same
# tables --help prints; tests/integration/test_man_pages.sh checks the options too.
add_executable(man_keys ${CMAKE_SOURCE_DIR}/deploy/man_keys.c)
target_link_libraries(man_keys PRIVATE totalplace_collector_core totalplace_agent_core)
set(MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(MAN_PAGES)
foreach(daemon collector agent)
  set(template ${CMAKE_SOURCE_DIR}/docs/totalplace-${daemon}.8.in)
  set(page ${MAN_DIR}/totalplace-${daemon}.8)
  add_custom_command(
    OUTPUT ${page}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${MAN_DIR}
    COMMAND man_keys ${daemon} > ${MAN_DIR}/${daemon}.keys
    COMMAND ${CMAKE_COMMAND} -DTEMPLATE=${template} -DKEYS=${MAN_DIR}/${daemon}.keys
            -DOUTPUT=${page}.in -P ${CMAKE_SOURCE_DIR}/deploy/fill_man.cmake
    COMMAND sed "s/@VERSION@/${PROJECT_VERSION}/" ${page}.in > ${page}
    DEPENDS man_keys ${template} ${CMAKE_SOURCE_DIR}/deploy/fill_man.cmake
    COMMENT "manual page totalplace-${daemon}.8")
  list(APPEND MAN_PAGES ${page})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${MAN_PAGES})

# Pages are installed compressed, as Debian policy asks.
foreach(page ${MAN_PAGES} ${CMAKE_SOURCE_DIR}/docs/totalplace.1)
  get_filename_component(name ${page} NAME)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${name})
  add_custom_command(
    OUTPUT ${MAN_DIR}/${name}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${MAN_DIR}
    COMMAND gzip -9nc ${page} > ${MAN_DIR}/${name}.gz
    DEPENDS ${page})
  add_custom_target(man_gz_${name} ALL DEPENDS ${MAN_DIR}/${name}.gz)
  install(FILES ${MAN_DIR}/${name}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

# ---------------------------------------------------------------- what is installed
install(TARGETS totalplace-collector totalplace totalplace-agent
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Units in Debian 12's system unit folder; configs as conffiles (an upgrade keeps local edits).
install(FILES ${CMAKE_SOURCE_DIR}/deploy/totalplace-collector.service
              ${CMAKE_SOURCE_DIR}/deploy/totalplace-agent@.service
              ${CMAKE_SOURCE_DIR}/deploy/totalplace-backup.service
              ${CMAKE_SOURCE_DIR}/deploy/totalplace-backup.timer
        DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/collector.conf
              ${CMAKE_SOURCE_DIR}/deploy/agent-example.conf
              ${CMAKE_SOURCE_DIR}/deploy/agent-council-unit.conf
              ${CMAKE_SOURCE_DIR}/deploy/agent-transparency-code.conf
        DESTINATION /etc/totalplace PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
set(TOTALPLACE_DOCS README.md docs/agent.md docs/architecture.md docs/collector.md
    docs/dependencies.md docs/input-format.md docs/install.md docs/onboarding.md
    docs/operations.md docs/protocol.md docs/query.md docs/security.md)
foreach(doc ${TOTALPLACE_DOCS})
  install(FILES ${CMAKE_SOURCE_DIR}/${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
endforeach()
install(FILES ${CMAKE_SOURCE_DIR}/deploy/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/changelog.gz
  COMMAND sed "s/@VERSION@/${PROJECT_VERSION}/" ${CMAKE_SOURCE_DIR}/deploy/debian/changelog.in
          | gzip -9n > ${CMAKE_BINARY_DIR}/changelog.gz
  DEPENDS ${CMAKE_SOURCE_DIR}/deploy/debian/changelog.in)
add_custom_target(deb_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/deploy/sample/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---------------------------------------------------------------- the package
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME totalplace)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "totalplace team <totalplace@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "place-based public spending totals: agents and collector")
# The extended description, in lines under 80 characters (CPack indents them as control wants).
set(CPACK_PACKAGE_DESCRIPTION "Public bodies (councils, the NHS, police, DWP, housing, fire)
run an agent beside their finance system; it delivers their spending
exports over ZeroMQ to one collector, which deduplicates them into LMDB
and keeps per-neighbourhood totals by body, service, period and
poolability. The central team asks the totals with the totalplace
command.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_STRIP_FILES ON)
include(CPack)
