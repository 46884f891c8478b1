/* settings: the one place where a configuration value's text becomes a field. */
#include "settings.h"
#include "err_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A config file is a few dozen lines; anything far bigger is the wrong file. */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
/* Room in sockaddr_un.sun_path for an ipc:// endpoint's path, without its NUL. */
#define IPC_PATH_MAX 107

/* A failure: the message into the caller's err, -1 returned (proto/err_text.h). */
#define fail(err, err_len, ...) err_text (err, err_len, -1, __VA_ARGS__)

static const setting_t *
find_setting (const settings_table_t *table, const char *key)
{
    for (size_t i = 0; i < table->count; i++)
        if (strcmp (table->settings[i].key, key) == 0)
            return &table->settings[i];
    return NULL;
}

/* True when some key lives below path ("collector" for "collector/state_dir"). */
static bool
is_section (const settings_table_t *table, const char *path)
{
    size_t len = strlen (path);
    for (size_t i = 0; i < table->count; i++)
        if (strncmp (table->settings[i].key, path, len) == 0 && table->settings[i].key[len] == '/')
            return true;
    return false;
}

static int
parse_uint (const setting_t *setting, const char *value, uint64_t *out, char *err, size_t err_len)
{
    /* strtoull accepts leading blanks and a minus sign; a config value should be digits only. */
    bool digits = *value != '\0';
    for (const char *p = value; *p; p++)
        if (*p < '0' || *p > '9')
            digits = false;
    errno = 0;
    unsigned long long number = digits ? strtoull (value, NULL, 10) : 0;
    if (!digits || errno == ERANGE || number < setting->min || number > setting->max)
        return fail (err, err_len, "%s: \"%.64s\" is not a whole number from %llu to %llu",
                     setting->key, value, (unsigned long long)setting->min,
                     (unsigned long long)setting->max);
    *out = (uint64_t)number;
    return 0;
}

static int
parse_bool (const setting_t *setting, const char *value, bool *out, char *err, size_t err_len)
{
    static const char *truths[] = {"1", "true", "yes", "on"};
    static const char *lies[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp (value, truths[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp (value, lies[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail (err, err_len, "%s: \"%.64s\" is not 0 or 1 (true/false, yes/no, on/off)",
                 setting->key, value);
}

static int
parse_choice (const setting_t *setting, const char *value, int *out, char *err, size_t err_len)
{
    char names[256] = "";
    for (int i = 0; setting->choices[i]; i++) {
        if (strcasecmp (value, setting->choices[i]) == 0) {
            *out = i;
            return 0;
        }
        size_t used = strlen (names);
        snprintf (names + used, sizeof names - used, "%s%s", i ? ", " : "", setting->choices[i]);
    }
    return fail (err, err_len, "%s: \"%.64s\" is not one of %s", setting->key, value, names);
}

static int
apply (const setting_t *setting, void *config, const char *value, char *err, size_t err_len)
{
    char *field = (char *)config + setting->offset;
    switch (setting->type) {
    case SETTING_STRING: {
        char *copy = strdup (value);
        if (!copy)
            return fail (err, err_len, "%s: out of memory", setting->key);
        char **slot = (char **)field;
        free (*slot);
        *slot = copy;
        return 0;
    }
    case SETTING_UINT: {
        uint64_t number = 0;
        if (parse_uint (setting, value, &number, err, err_len))
            return -1;
        memcpy (field, &number, sizeof number);
        return 0;
    }
    case SETTING_BOOL: {
        bool flag = false;
        if (parse_bool (setting, value, &flag, err, err_len))
            return -1;
        memcpy (field, &flag, sizeof flag);
        return 0;
    }
    case SETTING_CHOICE: {
        int choice = 0;
        if (parse_choice (setting, value, &choice, err, err_len))
            return -1;
        memcpy (field, &choice, sizeof choice);
        return 0;
    }
    }
    return fail (err, err_len, "%s: unknown setting type", setting->key);
}

int
settings_defaults (const settings_table_t *table, void *config)
{
    for (size_t i = 0; i < table->count; i++)
        if (table->settings[i].default_value &&
            apply (&table->settings[i], config, table->settings[i].default_value, NULL, 0))
            return -1;
    return 0;
}

void
settings_free (const settings_table_t *table, void *config)
{
    for (size_t i = 0; i < table->count; i++)
        if (table->settings[i].type == SETTING_STRING) {
            char **slot = (char **)((char *)config + table->settings[i].offset);
            free (*slot);
            *slot = NULL;
        }
}

int
settings_set (const settings_table_t *table, void *config, const char *key, const char *value,
              char *err, size_t err_len)
{
    const setting_t *setting = find_setting (table, key);
    if (!setting)
        return fail (err, err_len, "unknown key \"%.64s\"", key);
    if (!value)
        return fail (err, err_len, "%s: no value given", key);
    return apply (setting, config, value, err, err_len);
}

/* Applies every key below node; path is the node's own path ("" for the root). */
static int
apply_tree (const settings_table_t *table, void *config, zconfig_t *node, const char *path,
            const char *origin, char *err, size_t err_len)
{
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child)) {
        char child_path[256];
        const char *name = zconfig_name (child);
        int written = snprintf (child_path, sizeof child_path, "%s%s%s", path, *path ? "/" : "",
                                name ? name : "");
        if (written < 0 || (size_t)written >= sizeof child_path)
            return fail (err, err_len, "%s: key \"%.64s...\" is too long", origin, child_path);
        if (zconfig_child (child)) {
            if (!is_section (table, child_path))
                return fail (err, err_len, "%s: unknown section \"%s\"", origin, child_path);
            if (apply_tree (table, config, child, child_path, origin, err, err_len))
                return -1;
            continue;
        }
        const setting_t *setting = find_setting (table, child_path);
        if (!setting) {
            if (is_section (table, child_path))
                continue; /* an empty section */
            return fail (err, err_len, "%s: unknown key \"%s\" (see --help for the keys)", origin,
                         child_path);
        }
        char reason[SETTINGS_ERR_LEN];
        const char *value = zconfig_value (child);
        if (apply (setting, config, value ? value : "", reason, sizeof reason))
            return fail (err, err_len, "%s: %s", origin, reason);
    }
    return 0;
}

/* zconfig reports a syntax error without its line, so find the first prefix of the text that
 * does not parse: its last line is the culprit. Returns 0 when every prefix parses. */
static int
find_bad_line (const char *text, char *line, size_t line_len)
{
    size_t length = strlen (text);
    char *prefix = malloc (length + 1);
    if (!prefix)
        return 0;
    int number = 0;
    size_t start = 0;
    while (start < length) {
        const char *newline = memchr (text + start, '\n', length - start);
        size_t end = newline ? (size_t)(newline - text) + 1 : length;
        number++;
        memcpy (prefix, text, end);
        prefix[end] = '\0';
        zconfig_t *partial = zconfig_str_load (prefix);
        if (!partial) {
            size_t n = end - start;
            if (n && text[end - 1] == '\n')
                n--;
            snprintf (line, line_len, "%.*s", (int)(n > 80 ? 80 : n), text + start);
            free (prefix);
            return number;
        }
        zconfig_destroy (&partial);
        start = end;
    }
    free (prefix);
    return 0;
}

int
settings_load_string (const settings_table_t *table, void *config, const char *text,
                      const char *origin, char *err, size_t err_len)
{
    zconfig_t *root = zconfig_str_load (text);
    if (!root) {
        char line[96] = "";
        int number = find_bad_line (text, line, sizeof line);
        if (number > 0)
            return fail (err, err_len,
                         "%s line %d: not valid ZPL (indent by 4 spaces, write key = \"value\"): "
                         "%s",
                         origin, number, line);
        return fail (err, err_len, "%s: not valid ZPL", origin);
    }
    int rc = apply_tree (table, config, root, "", origin, err, err_len);
    zconfig_destroy (&root);
    return rc;
}

int
settings_load (const settings_table_t *table, void *config, const char *path, char *err,
               size_t err_len)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return fail (err, err_len, "cannot open config file %s: %s", path, strerror (errno));
    struct stat info;
    if (fstat (fileno (file), &info) != 0 || !S_ISREG (info.st_mode)) {
        fclose (file);
        return fail (err, err_len, "config file %s is not a regular file", path);
    }
    if (info.st_size > CONFIG_MAX_FILE_BYTES) {
        fclose (file);
        return fail (err, err_len, "config file %s is %lld bytes, more than the %d allowed", path,
                     (long long)info.st_size, CONFIG_MAX_FILE_BYTES);
    }
    size_t size = (size_t)info.st_size;
    char *text = malloc (size + 1);
    if (!text) {
        fclose (file);
        return fail (err, err_len, "out of memory reading %s", path);
    }
    size_t got = fread (text, 1, size, file);
    int read_error = ferror (file);
    fclose (file);
    if (read_error || got != size) {
        free (text);
        return fail (err, err_len, "cannot read config file %s", path);
    }
    text[size] = '\0';
    if (memchr (text, '\0', size)) {
        free (text);
        return fail (err, err_len, "config file %s holds a NUL byte; it is not a text file", path);
    }
    int rc = settings_load_string (table, config, text, path, err, err_len);
    free (text);
    return rc;
}

void
settings_describe (const settings_table_t *table, FILE *out)
{
    for (size_t i = 0; i < table->count; i++)
        fprintf (out, "  %-28s %-22s %s\n", table->settings[i].key,
                 table->settings[i].default_value ? table->settings[i].default_value
                                                  : "(no default)",
                 table->settings[i].description);
}

/* Writes text so that roff prints it as it is: backslashes and hyphens escaped, and a line that
 * would start with a control character made safe. */
static void
put_roff (FILE *out, const char *text)
{
    if (*text == '.' || *text == '\'')
        fputs ("\\&", out);
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            fputs ("\\e", out);
        else if (*p == '-')
            fputs ("\\-", out);
        else
            fputc (*p, out);
    }
}

void
settings_describe_roff (const settings_table_t *table, FILE *out)
{
    for (size_t i = 0; i < table->count; i++) {
        const setting_t *setting = &table->settings[i];
        fputs (".TP\n.B ", out);
        put_roff (out, setting->key);
        fputs ("\n", out);
        put_roff (out, setting->description);
        fputs (". Default: ", out);
        if (setting->default_value && *setting->default_value) {
            fputs ("\\fI", out);
            put_roff (out, setting->default_value);
            fputs ("\\fR", out);
        }
        else
            fputs (setting->default_value ? "empty" : "none", out);
        fputs (".\n", out);
    }
}

zlist_t *
settings_split_list (const char *list, size_t *empty_at)
{
    zlist_t *entries = zlist_new ();
    if (!entries)
        return NULL;
    zlist_autofree (entries);
    *empty_at = 0;
    const char *p = list ? list : "";
    size_t position = 0;
    while (true) {
        const char *comma = strchr (p, ',');
        const char *end = comma ? comma : p + strlen (p);
        const char *start = p;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        const char *stop = end;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        position++;
        if (stop == start) {
            if (!*empty_at)
                *empty_at = position;
        }
        else {
            char *entry = strndup (start, (size_t)(stop - start));
            if (!entry || zlist_append (entries, entry)) {
                free (entry);
                zlist_destroy (&entries);
                return NULL;
            }
            free (entry); /* the list keeps its own copy */
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return entries;
}

int
settings_check_endpoint (const char *key, const char *endpoint, char *err, size_t err_len)
{
    if (strncmp (endpoint, "tcp://", 6) == 0) {
        const char *colon = strrchr (endpoint + 6, ':');
        if (!colon || colon == endpoint + 6 || !colon[1])
            return fail (err, err_len, "%s: \"%.128s\" needs a host and a port, e.g. tcp://*:7700",
                         key, endpoint);
        return 0;
    }
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        size_t length = strlen (endpoint + 6);
        if (length == 0)
            return fail (err, err_len, "%s: \"%s\" needs a path", key, endpoint);
        if (length > IPC_PATH_MAX)
            return fail (err, err_len,
                         "%s: the path of \"%.128s\" is %zu bytes, more than the %d a Unix socket "
                         "allows",
                         key, endpoint, length, IPC_PATH_MAX);
        return 0;
    }
    if (strncmp (endpoint, "inproc://", 9) == 0) {
        if (!endpoint[9])
            return fail (err, err_len, "%s: \"%s\" needs a name", key, endpoint);
        return 0;
    }
    return fail (err, err_len, "%s: \"%.128s\" is not a tcp://, ipc:// or inproc:// endpoint", key,
                 endpoint);
}
