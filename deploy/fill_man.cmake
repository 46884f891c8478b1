# Fills a manual page template: the line @CONFIG_KEYS@ becomes the keys man_keys prints.
#   cmake -DTEMPLATE=... -DKEYS=... -DOUTPUT=... -P fill_man.cmake
file(READ "${TEMPLATE}" page)
file(READ "${KEYS}" keys)
string(FIND "${page}" "@CONFIG_KEYS@" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${TEMPLATE} has no @CONFIG_KEYS@ line")
endif()
string(REPLACE "@CONFIG_KEYS@\n" "${keys}" page "${page}")
file(WRITE "${OUTPUT}" "${page}")
