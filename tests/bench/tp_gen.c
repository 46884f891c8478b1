/* tp_gen: writes realistic, deterministic spending exports for the benchmarks: CSV files in the
 * agent's accepted format (one per agent and month) and the same records as pre-encoded Batch
 * frames, as an agent would send them. See docs/performance.md for the model. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_frames.h"
#include "spending.pb-c.h"
#include "wire.h"

#define MAX_MONTHS 120
#define MAX_AGENTS 64

/* ---------------------------------------------------------------- the model */

/* What kinds of public body exist, how many, how much of the country each covers, and what they
 * spend on. Numbers follow England roughly: ~330 councils, 42 ICBs, ~210 NHS trusts, 43 police
 * forces, 45 fire services, housing associations and two national bodies paying everywhere. */
typedef struct {
    const char *prefix;          /* body id prefix */
    unsigned count;              /* bodies of this kind */
    unsigned weight;             /* rows per neighbourhood covered, relative */
    const char *const *services; /* in order of how much is spent on them */
    const char *poolable;        /* 'Y'/'N' per service: budgets a body would pool */
} kind_t;

static const char *const COUNCIL_SERVICES[] = {"Adult Social Care",
                                               "Children's Services",
                                               "Housing",
                                               "Highways and Transport",
                                               "Waste",
                                               "Education",
                                               "Public Health",
                                               "Leisure and Culture",
                                               "Planning",
                                               "Community Safety",
                                               "Regeneration",
                                               "Corporate Services",
                                               NULL};
static const char *const ICB_SERVICES[] = {"Continuing Healthcare", "Primary Care",
                                           "Mental Health",         "Prescribing",
                                           "Community Health",      NULL};
static const char *const TRUST_SERVICES[] = {
    "Acute Care", "Community Health", "Mental Health", "Maternity",
    "Estates",    "Ambulance",        "Diagnostics",   NULL};
static const char *const POLICE_SERVICES[] = {"Neighbourhood Policing",
                                              "Response",
                                              "Investigations",
                                              "Partnerships",
                                              "Custody",
                                              "Estates",
                                              NULL};
static const char *const FIRE_SERVICES[] = {"Response", "Prevention", "Protection", "Estates",
                                            NULL};
static const char *const HOUSING_SERVICES[] = {"Repairs", "Tenancy Support", "New Homes",
                                               "Estate Services", NULL};
static const char *const NATIONAL_SERVICES[] = {"Employment Support",    "Probation Services",
                                                "Disability Employment", "Youth Justice",
                                                "Jobcentre Estates",     NULL};

static const kind_t KINDS[] = {
    {"GB-LAE-", 330, 100, COUNCIL_SERVICES, "YYYNNNYNNYYN"},
    {"GB-ICB-", 42, 60, ICB_SERVICES, "YNYNY"},
    {"GB-NHS-", 210, 120, TRUST_SERVICES, "NYYNNNN"},
    {"GB-POL-", 43, 30, POLICE_SERVICES, "YNNYNN"},
    {"GB-FRS-", 45, 10, FIRE_SERVICES, "NYNN"},
    {"GB-HA-", 120, 30, HOUSING_SERVICES, "NYNN"},
    {"GB-GOV-", 2, 15, NATIONAL_SERVICES, "YYYYN"},
};
#define KIND_COUNT (sizeof KINDS / sizeof KINDS[0])
static const char *const NATIONAL_IDS[] = {"DWP", "MOJ"};

static const char *const DESCRIPTIONS[] = {"Third party payments",
                                           "Agency staff",
                                           "Repairs and maintenance",
                                           "Grants to voluntary organisations",
                                           "Professional fees",
                                           "Equipment",
                                           "Utilities",
                                           "Rents",
                                           "Transport",
                                           "Catering",
                                           "IT software and licences",
                                           "Residential care",
                                           "Home care",
                                           "Foster care allowances",
                                           "Legal fees",
                                           "Training",
                                           "Consultancy",
                                           "Cleaning",
                                           "Security",
                                           "Supported accommodation"};
#define DESCRIPTION_COUNT (sizeof DESCRIPTIONS / sizeof DESCRIPTIONS[0])

static const char *const SUPPLIER_WORDS[] = {
    "ACORN",   "ALPHA",     "APEX",    "BRIDGE",   "CASTLE",   "CEDAR",    "CENTRAL", "CITY",
    "COUNTY",  "CROWN",     "DIRECT",  "EAGLE",    "FIRST",    "GREEN",    "HARBOUR", "HERITAGE",
    "HOPE",    "KESTREL",   "LIBERTY", "MERIDIAN", "NORTHERN", "OAK",      "PENNINE", "PHOENIX",
    "PREMIER", "RIVERSIDE", "SUMMIT",  "UNITED",   "VALLEY",   "VICTORIA", "WILLOW",  "YORKSHIRE"};
static const char *const SUPPLIER_TRADES[] = {
    "CARE",     "CONSTRUCTION", "CLEANING", "TRAVEL", "SUPPORT SERVICES", "IT", "FOODS", "HOUSING",
    "SECURITY", "TRAINING",     "LEGAL",    "ENERGY"};
static const char *const SUPPLIER_SUFFIXES[] = {"LTD", "LIMITED", "PLC", "LLP", "& CO", "CIC"};
static const char *const SURNAMES[] = {"SMITH",    "JONES",  "TAYLOR",  "BROWN",
                                       "WILLIAMS", "WILSON", "JOHNSON", "DAVIES",
                                       "PATEL",    "WRIGHT", "KHAN",    "EVANS"};
#define COUNT_OF(a) (sizeof (a) / sizeof ((a)[0]))

/* Amounts: the decade of the amount in pounds is drawn with these weights (out of 1000), then a
 * mantissa uniformly within it, so amounts spread over seven orders of magnitude like real
 * spending; 3% are credits (refunds, reversals). Exact integer pence throughout. */
static const unsigned DECADE_WEIGHTS[] = {20, 60, 220, 400, 220, 70, 10}; /* £1 .. £10M */
#define CREDIT_PER_MILLE 30

/* Season: the fiscal year ends in March (spending peaks) and April starts slowly. */
static unsigned
season_weight (int month)
{
    return month == 3 ? 16 : month == 4 ? 8 : 10;
}

/* Rows that are not new records: per mille of all rows. */
#define DUPLICATE_PER_MILLE  50  /* an earlier row of the same body exported again, identical */
#define CORRECTION_PER_MILLE 10  /* an earlier record re-sent with revision 2 */
#define WITHDRAWN_PER_MILLE  100 /* of corrections: the record is withdrawn */

/* ---------------------------------------------------------------- random numbers */

static uint64_t
mix64 (uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C (0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C (0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

typedef struct {
    uint64_t state;
} rng_t;

static uint64_t
rng_next (rng_t *rng)
{
    rng->state += UINT64_C (0x9e3779b97f4a7c15);
    return mix64 (rng->state);
}

static uint64_t
rng_below (rng_t *rng, uint64_t bound)
{
    return bound ? rng_next (rng) % bound : 0;
}

/* A stream of numbers that depends only on its inputs, so a record's content is a function of
 * (seed, body, transaction, revision) and a duplicate or a correction can be re-derived. */
static rng_t
rng_for (uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    rng_t rng = {mix64 (seed ^ mix64 (a + UINT64_C (0x1234567)) ^ mix64 (b * 31 + 7) ^
                        mix64 (c * 1009 + 13))};
    return rng;
}

static size_t
pick_weighted (rng_t *rng, const unsigned *weights, size_t count)
{
    unsigned total = 0;
    for (size_t i = 0; i < count; i++)
        total += weights[i];
    unsigned r = (unsigned)rng_below (rng, total);
    for (size_t i = 0; i < count; i++) {
        if (r < weights[i])
            return i;
        r -= weights[i];
    }
    return count - 1;
}

/* Zipf-like: service i is chosen with weight 1/(i+1). */
static size_t
pick_service (rng_t *rng, size_t count)
{
    unsigned weights[16];
    for (size_t i = 0; i < count && i < 16; i++)
        weights[i] = (unsigned)(2520 / (i + 1));
    return pick_weighted (rng, weights, count < 16 ? count : 16);
}

/* ---------------------------------------------------------------- bodies */

typedef struct {
    char id[32];
    size_t kind;
    uint32_t first_neighbourhood, neighbourhoods;
    uint64_t weight;
    unsigned agent;
    uint64_t next_txn;                    /* next new transaction number */
    uint64_t month_start[MAX_MONTHS + 1]; /* first transaction number of each month */
    uint64_t rows_in_month;               /* of the month being written */
} body_t;

typedef struct {
    uint64_t records;
    uint64_t seed;
    unsigned agents;
    const char *out;
    unsigned batch_records;
    int first_year, first_month;
    unsigned months;
    uint64_t txn_base;
    uint32_t neighbourhoods;
    const char *agent_prefix;
    bool csv, frames;
} options_t;

typedef struct {
    options_t opt;
    body_t *bodies;
    size_t body_count;
    uint64_t rows, originals, duplicates, corrections, withdrawals;
    uint64_t batches, csv_bytes, frame_bytes;
} gen_t;

static void
body_code (char *out, size_t out_len, unsigned index)
{
    char letters[4] = {(char)('A' + index / 676 % 26), (char)('A' + index / 26 % 26),
                       (char)('A' + index % 26), '\0'};
    snprintf (out, out_len, "%s", letters);
}

/* Each kind's bodies split the country's neighbourhoods into contiguous areas of uneven size
 * (neighbouring codes are neighbouring places, as GSS codes are within a district); the national
 * bodies each cover everything. */
static int
make_bodies (gen_t *gen)
{
    size_t count = 0;
    for (size_t k = 0; k < KIND_COUNT; k++)
        count += KINDS[k].count;
    gen->bodies = calloc (count, sizeof *gen->bodies);
    if (!gen->bodies)
        return -1;
    size_t n = 0;
    for (size_t k = 0; k < KIND_COUNT; k++) {
        const kind_t *kind = &KINDS[k];
        bool national = strcmp (kind->prefix, "GB-GOV-") == 0;
        uint64_t sizes[512], total = 0;
        rng_t rng = rng_for (gen->opt.seed, 0xB0D1E5, k, 0);
        for (unsigned i = 0; i < kind->count; i++) {
            sizes[i] = 50 + rng_below (&rng, 101);
            total += sizes[i];
        }
        uint64_t cumulative = 0;
        for (unsigned i = 0; i < kind->count; i++, n++) {
            body_t *body = &gen->bodies[n];
            char code[8];
            if (national)
                snprintf (code, sizeof code, "%s", NATIONAL_IDS[i % COUNT_OF (NATIONAL_IDS)]);
            else
                body_code (code, sizeof code, i);
            snprintf (body->id, sizeof body->id, "%s%s", kind->prefix, code);
            body->kind = k;
            if (national) {
                body->first_neighbourhood = 0;
                body->neighbourhoods = gen->opt.neighbourhoods;
            }
            else {
                uint64_t from = gen->opt.neighbourhoods * cumulative / total;
                cumulative += sizes[i];
                uint64_t to = gen->opt.neighbourhoods * cumulative / total;
                body->first_neighbourhood = (uint32_t)from;
                body->neighbourhoods = (uint32_t)(to > from ? to - from : 1);
            }
            body->weight = (uint64_t)body->neighbourhoods * kind->weight;
            body->agent = (unsigned)(n % gen->opt.agents);
            body->next_txn = gen->opt.txn_base;
        }
    }
    gen->body_count = n;
    return 0;
}

/* ---------------------------------------------------------------- rows */

typedef struct {
    const char *body_id;
    char record_id[24];
    uint32_t revision;
    char date[32];
    char period[24];
    int64_t amount_pence;
    char neighbourhood[16];
    const char *service;
    char supplier[64];
    const char *description;
    bool poolable;
    bool withdrawn;
} row_t;

static int
days_in_month (int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

static void
month_of (const gen_t *gen, unsigned index, int *year, int *month)
{
    int zero_based = gen->opt.first_month - 1 + (int)index;
    *year = gen->opt.first_year + zero_based / 12;
    *month = zero_based % 12 + 1;
}

static int64_t
draw_amount (rng_t *rng)
{
    size_t decade = pick_weighted (rng, DECADE_WEIGHTS, COUNT_OF (DECADE_WEIGHTS));
    int64_t scale = 1;
    for (size_t i = 0; i < decade; i++)
        scale *= 10;
    /* 100..999 pence times the decade, plus pence below the mantissa's last digit. */
    int64_t pence =
        (100 + (int64_t)rng_below (rng, 900)) * scale + (int64_t)rng_below (rng, (uint64_t)scale);
    return rng_below (rng, 1000) < CREDIT_PER_MILLE ? -pence : pence;
}

static void
draw_neighbourhood (const gen_t *gen, const body_t *body, rng_t *rng, char *out, size_t out_len)
{
    uint32_t index = body->first_neighbourhood + (uint32_t)rng_below (rng, body->neighbourhoods);
    snprintf (out, out_len, "E01%06" PRIu32, index % gen->opt.neighbourhoods + 1);
}

static void
draw_supplier (rng_t *rng, char *out, size_t out_len)
{
    unsigned kind = (unsigned)rng_below (rng, 1000);
    if (kind < 100) /* individuals are written surname first, with a comma the CSV must quote */
        snprintf (out, out_len, "%s, %c", SURNAMES[rng_below (rng, COUNT_OF (SURNAMES))],
                  (char)('A' + rng_below (rng, 26)));
    else if (kind < 102) /* a name with quotes in it */
        snprintf (out, out_len, "THE \"%s\" TRUST",
                  SUPPLIER_WORDS[rng_below (rng, COUNT_OF (SUPPLIER_WORDS))]);
    else
        snprintf (out, out_len, "%s %s %s",
                  SUPPLIER_WORDS[rng_below (rng, COUNT_OF (SUPPLIER_WORDS))],
                  SUPPLIER_TRADES[rng_below (rng, COUNT_OF (SUPPLIER_TRADES))],
                  SUPPLIER_SUFFIXES[rng_below (rng, COUNT_OF (SUPPLIER_SUFFIXES))]);
}

/* Which month a transaction number of this body was first exported in. */
static unsigned
month_of_txn (const gen_t *gen, const body_t *body, uint64_t txn, unsigned current)
{
    unsigned low = 0, high = current; /* month_start[low] <= txn */
    while (low < high) {
        unsigned mid = (low + high + 1) / 2;
        if (body->month_start[mid] <= txn)
            low = mid;
        else
            high = mid - 1;
    }
    (void)gen;
    return low;
}

/* The content of (body, txn, revision): revision 1 from the transaction alone; a correction keeps
 * what identifies the payment (date, supplier, description) and changes the amount, and sometimes
 * the neighbourhood it is attributed to, or withdraws it. */
static void
make_row (const gen_t *gen, size_t body_index, uint64_t txn, unsigned month_index,
          uint32_t revision, row_t *row)
{
    const body_t *body = &gen->bodies[body_index];
    const kind_t *kind = &KINDS[body->kind];
    rng_t rng = rng_for (gen->opt.seed, body_index, txn, 1);
    row->body_id = body->id;
    snprintf (row->record_id, sizeof row->record_id, "%010" PRIu64, txn);
    row->revision = revision;
    int year, month;
    month_of (gen, month_index, &year, &month);
    snprintf (row->period, sizeof row->period, "%04d-%02d", year, month);
    snprintf (row->date, sizeof row->date, "%04d-%02d-%02d", year, month,
              1 + (int)rng_below (&rng, (uint64_t)days_in_month (year, month)));
    size_t services = 0;
    while (kind->services[services])
        services++;
    size_t service = pick_service (&rng, services);
    row->service = kind->services[service];
    row->poolable = kind->poolable[service] == 'Y';
    if (rng_below (&rng, 100) < 5) /* a body's own view of a budget differs now and then */
        row->poolable = !row->poolable;
    draw_neighbourhood (gen, body, &rng, row->neighbourhood, sizeof row->neighbourhood);
    draw_supplier (&rng, row->supplier, sizeof row->supplier);
    row->description = DESCRIPTIONS[rng_below (&rng, DESCRIPTION_COUNT)];
    row->amount_pence = draw_amount (&rng);
    row->withdrawn = false;
    if (revision > 1) {
        rng_t change = rng_for (gen->opt.seed, body_index, txn, revision);
        row->amount_pence = draw_amount (&change);
        if (rng_below (&change, 100) < 30)
            draw_neighbourhood (gen, body, &change, row->neighbourhood, sizeof row->neighbourhood);
        row->withdrawn = rng_below (&change, 1000) < WITHDRAWN_PER_MILLE;
    }
}

/* ---------------------------------------------------------------- output */

typedef struct {
    FILE *csv;
    FILE *frames;
    uint64_t next_seq;
    char agent_id[64];
    /* The batch being filled: records point into rows. */
    row_t *rows;
    Totalplace__SpendingRecord *records;
    Totalplace__SpendingRecord **record_pointers;
    size_t count;
    uint8_t *buffer;
    size_t buffer_size;
} agent_out_t;

static void
csv_field (FILE *file, const char *text)
{
    if (!strpbrk (text, ",\"\r\n")) {
        fputs (text, file);
        return;
    }
    fputc ('"', file);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc ('"', file);
        fputc (*p, file);
    }
    fputc ('"', file);
}

static const char CSV_HEADER[] = "Body ID,Transaction Number,Revision,Date,Amount,Neighbourhood,"
                                 "Service Area,Supplier Name,Expenses Type,Poolable,Withdrawn\n";

static void
write_csv_row (FILE *file, const row_t *row)
{
    int64_t pence = row->amount_pence;
    uint64_t magnitude = pence < 0 ? (uint64_t)-pence : (uint64_t)pence;
    fprintf (file, "%s,%s,%" PRIu32 ",%s,%s%" PRIu64 ".%02" PRIu64 ",%s,", row->body_id,
             row->record_id, row->revision, row->date, pence < 0 ? "-" : "", magnitude / 100,
             magnitude % 100, row->neighbourhood);
    csv_field (file, row->service);
    fputc (',', file);
    csv_field (file, row->supplier);
    fputc (',', file);
    csv_field (file, row->description);
    fprintf (file, ",%s,%s\n", row->poolable ? "Yes" : "No", row->withdrawn ? "Yes" : "No");
}

static int
flush_batch (gen_t *gen, agent_out_t *out)
{
    if (out->count == 0)
        return 0;
    Totalplace__Batch batch = TOTALPLACE__BATCH__INIT;
    batch.agent_id = out->agent_id;
    batch.batch_seq = out->next_seq++;
    batch.n_records = out->count;
    batch.records = out->record_pointers;
    size_t size = protobuf_c_message_get_packed_size (&batch.base);
    if (size > WIRE_MAX_MESSAGE_BYTES) {
        fprintf (stderr, "tp_gen: a batch of %zu records is %zu bytes, over the wire limit\n",
                 out->count, size);
        return -1;
    }
    if (size > out->buffer_size) {
        uint8_t *buffer = realloc (out->buffer, size);
        if (!buffer)
            return -1;
        out->buffer = buffer;
        out->buffer_size = size;
    }
    protobuf_c_message_pack (&batch.base, out->buffer);
    if (bench_frames_append (out->frames, out->buffer, (uint32_t)size, (uint32_t)out->count)) {
        fprintf (stderr, "tp_gen: cannot write frames: %s\n", strerror (errno));
        return -1;
    }
    gen->batches++;
    gen->frame_bytes += size + 8;
    out->count = 0;
    return 0;
}

/* Adds a row to the agent's current batch exactly as the agent's CSV reader would make it. */
static int
add_to_batch (gen_t *gen, agent_out_t *out, const row_t *row)
{
    row_t *copy = &out->rows[out->count];
    *copy = *row;
    Totalplace__SpendingRecord *record = &out->records[out->count];
    totalplace__spending_record__init (record);
    record->body_id = (char *)copy->body_id;
    record->record_id = copy->record_id;
    record->revision = copy->revision;
    record->neighbourhood = copy->neighbourhood;
    record->service = (char *)copy->service;
    record->period = copy->period;
    record->amount_pence = copy->amount_pence;
    record->poolable = copy->poolable;
    record->supplier = copy->supplier;
    record->description = (char *)copy->description;
    record->withdrawn = copy->withdrawn;
    out->record_pointers[out->count] = record;
    if (++out->count == gen->opt.batch_records)
        return flush_batch (gen, out);
    return 0;
}

static int
emit_row (gen_t *gen, agent_out_t *out, const row_t *row)
{
    gen->rows++;
    if (out->csv)
        write_csv_row (out->csv, row);
    return out->frames ? add_to_batch (gen, out, row) : 0;
}

/* Writes one body's rows of one month: new transactions in ascending order, with duplicates of
 * earlier rows and corrections of earlier records mixed in. */
static int
write_body_month (gen_t *gen, agent_out_t *out, size_t body_index, unsigned month_index, rng_t *rng)
{
    body_t *body = &gen->bodies[body_index];
    for (uint64_t r = 0; r < body->rows_in_month; r++) {
        unsigned roll = (unsigned)rng_below (rng, 1000);
        uint64_t earlier = body->next_txn - gen->opt.txn_base;
        row_t row;
        if (earlier && roll < DUPLICATE_PER_MILLE) {
            uint64_t txn = gen->opt.txn_base + rng_below (rng, earlier);
            make_row (gen, body_index, txn, month_of_txn (gen, body, txn, month_index), 1, &row);
            gen->duplicates++;
        }
        else if (earlier && roll < DUPLICATE_PER_MILLE + CORRECTION_PER_MILLE) {
            uint64_t txn = gen->opt.txn_base + rng_below (rng, earlier);
            make_row (gen, body_index, txn, month_of_txn (gen, body, txn, month_index), 2, &row);
            gen->corrections++;
            gen->withdrawals += row.withdrawn;
        }
        else {
            make_row (gen, body_index, body->next_txn++, month_index, 1, &row);
            gen->originals++;
        }
        if (emit_row (gen, out, &row))
            return -1;
    }
    return 0;
}

/* Splits the rows over (body, month) cells in proportion to body weight times season, exactly:
 * cumulative floors, so the counts add up to the total. */
static void
allocate_rows (gen_t *gen, unsigned month_index, unsigned __int128 *done_weight,
               unsigned __int128 total_weight, uint64_t *allocated)
{
    int year, month;
    month_of (gen, month_index, &year, &month);
    for (size_t b = 0; b < gen->body_count; b++) {
        body_t *body = &gen->bodies[b];
        *done_weight += (unsigned __int128)body->weight * season_weight (month);
        uint64_t upto =
            (uint64_t)((unsigned __int128)gen->opt.records * *done_weight / total_weight);
        body->rows_in_month = upto - *allocated;
        *allocated = upto;
        body->month_start[month_index] = body->next_txn;
    }
}

static int
make_dir (const char *path)
{
    if (mkdir (path, 0755) != 0 && errno != EEXIST) {
        fprintf (stderr, "tp_gen: cannot create %s: %s\n", path, strerror (errno));
        return -1;
    }
    return 0;
}

static int
generate (gen_t *gen)
{
    const options_t *opt = &gen->opt;
    if (make_bodies (gen))
        return -1;
    char path[4096];
    if (make_dir (opt->out))
        return -1;
    snprintf (path, sizeof path, "%s/csv", opt->out);
    if (opt->csv && make_dir (path))
        return -1;
    snprintf (path, sizeof path, "%s/frames", opt->out);
    if (opt->frames && make_dir (path))
        return -1;

    agent_out_t outs[MAX_AGENTS];
    memset (outs, 0, sizeof outs);
    int rc = -1;
    for (unsigned a = 0; a < opt->agents; a++) {
        agent_out_t *out = &outs[a];
        snprintf (out->agent_id, sizeof out->agent_id, "%s%u", opt->agent_prefix, a);
        out->next_seq = 1;
        if (opt->csv) {
            snprintf (path, sizeof path, "%s/csv/agent%u", opt->out, a);
            if (make_dir (path))
                goto out;
        }
        if (opt->frames) {
            snprintf (path, sizeof path, "%s/frames/agent%u.frames", opt->out, a);
            out->frames = fopen (path, "wb");
            out->rows = calloc (opt->batch_records, sizeof *out->rows);
            out->records = calloc (opt->batch_records, sizeof *out->records);
            out->record_pointers = calloc (opt->batch_records, sizeof *out->record_pointers);
            if (!out->frames || !out->rows || !out->records || !out->record_pointers) {
                fprintf (stderr, "tp_gen: cannot write %s: %s\n", path, strerror (errno));
                goto out;
            }
        }
    }

    unsigned __int128 total_weight = 0, done_weight = 0;
    for (unsigned m = 0; m < opt->months; m++) {
        int year, month;
        month_of (gen, m, &year, &month);
        for (size_t b = 0; b < gen->body_count; b++)
            total_weight += (unsigned __int128)gen->bodies[b].weight * season_weight (month);
    }
    uint64_t allocated = 0;
    for (unsigned m = 0; m < opt->months; m++) {
        allocate_rows (gen, m, &done_weight, total_weight, &allocated);
        int year, month;
        month_of (gen, m, &year, &month);
        rng_t rng = rng_for (opt->seed, 0x40407, m, 0);
        for (unsigned a = 0; a < opt->agents; a++) {
            agent_out_t *out = &outs[a];
            /* One export per agent and month, as a finance system would drop it. */
            if (opt->csv) {
                snprintf (path, sizeof path, "%s/csv/agent%u/spend-%04d-%02d.csv", opt->out, a,
                          year, month);
                out->csv = fopen (path, "w");
                if (!out->csv) {
                    fprintf (stderr, "tp_gen: cannot write %s: %s\n", path, strerror (errno));
                    goto out;
                }
                fputs (CSV_HEADER, out->csv);
            }
            for (size_t b = 0; b < gen->body_count; b++)
                if (gen->bodies[b].agent == a && write_body_month (gen, out, b, m, &rng))
                    goto out;
            /* The agent never puts two files in one batch. */
            if (out->frames && flush_batch (gen, out))
                goto out;
            if (out->csv) {
                gen->csv_bytes += (uint64_t)ftell (out->csv);
                if (fclose (out->csv) != 0) {
                    out->csv = NULL;
                    fprintf (stderr, "tp_gen: cannot write %s: %s\n", path, strerror (errno));
                    goto out;
                }
                out->csv = NULL;
            }
        }
    }
    rc = 0;
out:
    for (unsigned a = 0; a < opt->agents; a++) {
        agent_out_t *out = &outs[a];
        if (out->csv)
            fclose (out->csv);
        if (out->frames && fclose (out->frames) != 0 && rc == 0) {
            fprintf (stderr, "tp_gen: cannot write frames: %s\n", strerror (errno));
            rc = -1;
        }
        free (out->rows);
        free (out->records);
        free (out->record_pointers);
        free (out->buffer);
    }
    return rc;
}

/* ---------------------------------------------------------------- main */

static void
usage (FILE *out)
{
    fprintf (out,
             "Usage: tp_gen --out DIR [OPTION]...\n"
             "Writes deterministic, realistic spending exports for the benchmarks:\n"
             "  DIR/csv/agentK/spend-YYYY-MM.csv   one export per agent and month (agent format)\n"
             "  DIR/frames/agentK.frames           the same records as encoded Batches\n"
             "  DIR/manifest                       counts, as KEY=VALUE lines\n"
             "\n"
             "  --records N         rows in all files together (default 1000000)\n"
             "  --seed S            random seed (default 1)\n"
             "  --agents A          agents the bodies are spread over (default 4, at most %d)\n"
             "  --batch-records B   records per Batch frame (default 1000, as the agent)\n"
             "  --first-month M     first month YYYY-MM (default 2022-04)\n"
             "  --months K          months (default 24, at most %d)\n"
             "  --txn-base T        first transaction number of every body (default 1)\n"
             "  --neighbourhoods K  neighbourhood codes E01000001.. (default 33000)\n"
             "  --agent-prefix P    Batch agent ids are P0, P1, ... (default bench-agent)\n"
             "  --no-csv, --no-frames   skip one output\n",
             MAX_AGENTS, MAX_MONTHS);
}

static int
parse_u64 (const char *name, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || value < min || value > max) {
        fprintf (stderr,
                 "tp_gen: %s wants a whole number from %" PRIu64 " to %" PRIu64 ", not \"%s\"\n",
                 name, min, max, text);
        return -1;
    }
    *out = value;
    return 0;
}

int
main (int argc, char *argv[])
{
    static const struct option long_options[] = {{"records", required_argument, NULL, 'r'},
                                                 {"seed", required_argument, NULL, 's'},
                                                 {"agents", required_argument, NULL, 'a'},
                                                 {"out", required_argument, NULL, 'o'},
                                                 {"batch-records", required_argument, NULL, 'b'},
                                                 {"first-month", required_argument, NULL, 'f'},
                                                 {"months", required_argument, NULL, 'm'},
                                                 {"txn-base", required_argument, NULL, 't'},
                                                 {"neighbourhoods", required_argument, NULL, 'n'},
                                                 {"agent-prefix", required_argument, NULL, 'p'},
                                                 {"no-csv", no_argument, NULL, 'C'},
                                                 {"no-frames", no_argument, NULL, 'F'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    gen_t gen = {.opt = {.records = 1000000,
                         .seed = 1,
                         .agents = 4,
                         .batch_records = 1000,
                         .first_year = 2022,
                         .first_month = 4,
                         .months = 24,
                         .txn_base = 1,
                         .neighbourhoods = 33000,
                         .agent_prefix = "bench-agent",
                         .csv = true,
                         .frames = true}};
    options_t *opt = &gen.opt;
    int option;
    uint64_t value;
    while ((option = getopt_long (argc, argv, "h", long_options, NULL)) != -1) {
        switch (option) {
        case 'r':
            if (parse_u64 ("--records", optarg, 1, UINT64_C (1000000000), &opt->records))
                return 2;
            break;
        case 's':
            if (parse_u64 ("--seed", optarg, 0, UINT64_MAX, &opt->seed))
                return 2;
            break;
        case 'a':
            if (parse_u64 ("--agents", optarg, 1, MAX_AGENTS, &value))
                return 2;
            opt->agents = (unsigned)value;
            break;
        case 'o':
            opt->out = optarg;
            break;
        case 'b':
            if (parse_u64 ("--batch-records", optarg, 1, WIRE_MAX_RECORDS_PER_BATCH, &value))
                return 2;
            opt->batch_records = (unsigned)value;
            break;
        case 'f':
            if (sscanf (optarg, "%4d-%2d", &opt->first_year, &opt->first_month) != 2 ||
                strlen (optarg) != 7 || opt->first_month < 1 || opt->first_month > 12 ||
                opt->first_year < 1970 || opt->first_year > 2900) {
                fprintf (stderr, "tp_gen: --first-month wants YYYY-MM, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_u64 ("--months", optarg, 1, MAX_MONTHS, &value))
                return 2;
            opt->months = (unsigned)value;
            break;
        case 't':
            if (parse_u64 ("--txn-base", optarg, 1, UINT64_C (5000000000), &opt->txn_base))
                return 2;
            break;
        case 'n':
            if (parse_u64 ("--neighbourhoods", optarg, 1, 999999, &value))
                return 2;
            opt->neighbourhoods = (uint32_t)value;
            break;
        case 'p':
            opt->agent_prefix = optarg;
            break;
        case 'C':
            opt->csv = false;
            break;
        case 'F':
            opt->frames = false;
            break;
        case 'h':
            usage (stdout);
            return 0;
        default:
            usage (stderr);
            return 2;
        }
    }
    if (!opt->out || optind != argc) {
        usage (stderr);
        return 2;
    }
    if (generate (&gen)) {
        free (gen.bodies);
        return 1;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/manifest", opt->out);
    FILE *manifest = fopen (path, "w");
    if (!manifest) {
        fprintf (stderr, "tp_gen: cannot write %s: %s\n", path, strerror (errno));
        free (gen.bodies);
        return 1;
    }
    fprintf (manifest,
             "rows=%" PRIu64 "\noriginals=%" PRIu64 "\nduplicates=%" PRIu64 "\ncorrections=%" PRIu64
             "\nwithdrawals=%" PRIu64 "\nbodies=%zu\n"
             "neighbourhoods=%" PRIu32 "\nmonths=%u\nagents=%u\nseed=%" PRIu64 "\nbatches=%" PRIu64
             "\ncsv_bytes=%" PRIu64 "\nframe_bytes=%" PRIu64 "\n",
             gen.rows, gen.originals, gen.duplicates, gen.corrections, gen.withdrawals,
             gen.body_count, opt->neighbourhoods, opt->months, opt->agents, opt->seed, gen.batches,
             gen.csv_bytes, gen.frame_bytes);
    int bad = fclose (manifest) != 0;
    free (gen.bodies);
    if (bad) {
        fprintf (stderr, "tp_gen: cannot write %s\n", path);
        return 1;
    }
    return 0;
}
