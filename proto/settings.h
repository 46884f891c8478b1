/* settings: daemon configuration described as data (a table of key, type, default, bounds and
 * struct offset, as in Fluent Bit), applied in one place from ZPL files and command-line options.
 * Both daemons' configs are such tables over their own structs. */
#ifndef TOTALPLACE_SETTINGS_H
#define TOTALPLACE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <czmq.h>

typedef enum {
    SETTING_STRING, /* char *, owned by the struct */
    SETTING_UINT,   /* uint64_t within [min, max] */
    SETTING_BOOL,   /* bool: 1/0, true/false, yes/no, on/off */
    SETTING_CHOICE, /* int: index into choices (a NULL-terminated list of names) */
} setting_type_t;

typedef struct {
    const char *key; /* "section/name" */
    setting_type_t type;
    const char *default_value; /* NULL: no default */
    uint64_t min, max;         /* bounds of a SETTING_UINT */
    size_t offset;             /* of the field in the config struct */
    const char *description;
    const char *const *choices; /* for SETTING_CHOICE */
} setting_t;

typedef struct {
    const setting_t *settings;
    size_t count;
} settings_table_t;

#define SETTINGS_ERR_LEN 512

/* Applies every default to config (a zeroed struct). Returns 0, or -1 when out of memory. */
int settings_defaults (const settings_table_t *table, void *config);

/* Frees the strings the table owns in config. */
void settings_free (const settings_table_t *table, void *config);

/* Sets one key from its text form. Returns 0, or -1 with a message naming the key. */
int settings_set (const settings_table_t *table, void *config, const char *key, const char *value,
                  char *err, size_t err_len);

/* Applies a ZPL document / file over config. Unknown sections and keys are errors naming them;
 * a syntax error names the line. On error config may hold some values: discard it. */
int settings_load_string (const settings_table_t *table, void *config, const char *text,
                          const char *origin, char *err, size_t err_len);
int settings_load (const settings_table_t *table, void *config, const char *path, char *err,
                   size_t err_len);

/* One line per key (name, default, description), for --help. */
void settings_describe (const settings_table_t *table, FILE *out);

/* The same as man(7) roff, one .TP entry per key (for the daemons' manual pages, generated from
 * this table at build time so that they can never disagree with --help). */
void settings_describe_roff (const settings_table_t *table, FILE *out);

/* Splits a comma-separated list into trimmed entries (the list frees them). *empty_at is set to
 * the 1-based position of the first empty entry, or 0. NULL when out of memory. */
zlist_t *settings_split_list (const char *list, size_t *empty_at);

/* Checks a ZeroMQ endpoint's form (tcp://host:port, ipc://path within a socket path's length,
 * inproc://name). Returns 0 or -1 with a message naming key. */
int settings_check_endpoint (const char *key, const char *endpoint, char *err, size_t err_len);

#endif
