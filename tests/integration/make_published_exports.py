#!/usr/bin/env python3
"""Writes spending exports shaped exactly as English councils publish them, for
test_published_exports.sh: deterministic (a fixed seed), byte for byte (CRLF, a UTF-8 byte order
mark, Windows-1252 bytes, the file's own totals row, invoice lines sharing a transaction number,
the same header twice, a fiscal "Period" beside the real date, a header that changes between two
quarters). Each file also gets a shuffled re-issue (rows in another order, dates written another
way) under reissue/.

    make_published_exports.py OUT_DIR
"""
import os
import random
import sys
from decimal import Decimal

OUT = sys.argv[1]
rng = random.Random(20261130)
NBH = ["E01007301", "E01007302", "E01007303", "E01007304", "E01007305", "E01007306"]
SERVICES = ["Adult Social Care", "Housing", "Highways", "Children's Services", "Waste"]
SUPPLIERS = ["BARNARDOS", "KIER SERVICES LTD", "BRITISH GAS TRADING LTD", "ESPO",
             "SMITH & SONS (BUILDERS)", "O'BRIEN, J"]


def amount():
    pence = rng.choice([rng.randint(50_000, 500_000), rng.randint(500_000, 50_000_000)])
    if rng.random() < 0.05:
        pence = -pence // 10
    return Decimal(pence) / 100


def day(month):
    return (2015, month, rng.randint(1, 28))


def csv_cell(text):
    text = str(text)
    if any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def write(name, header, rows, eol="\n", bom=False, encoding="utf-8", totals=None, ncols=None):
    """rows: lists of cells; totals: the amount column index for a trailing totals row."""
    lines = [",".join(csv_cell(c) for c in header)]
    lines += [",".join(csv_cell(c) for c in row) for row in rows]
    if totals is not None:
        total = sum(Decimal(str(r[totals]).replace("£", "").replace(",", "")) for r in rows)
        cells = [""] * len(header)
        cells[totals] = str(total)
        lines.append(",".join(cells))
    data = eol.join(lines) + eol
    raw = data.encode(encoding)
    if bom:
        raw = b"\xef\xbb\xbf" + raw
    for folder in ("", "reissue"):
        os.makedirs(os.path.join(OUT, folder), exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(raw)
    # The re-issue: the same rows in another order, dates as DD/MM/YYYY, amounts with "£" and
    # thousands separators; the totals row stays last.
    body = lines[1:-1] if totals is not None else lines[1:]
    shuffled = rows[:]
    rng.shuffle(shuffled)
    reissued = [lines[0]]
    for row in shuffled:
        cells = []
        for c in row:
            if isinstance(c, tuple):
                cells.append("%02d/%02d/%04d" % (c[2], c[1], c[0]))
            elif isinstance(c, Decimal):
                cells.append(csv_cell("£{:,.2f}".format(c)))
            else:
                cells.append(csv_cell(c))
        reissued.append(",".join(cells))
    if totals is not None:
        reissued.append(lines[-1])
    raw = (eol.join(reissued) + eol).encode(encoding)
    if bom:
        raw = b"\xef\xbb\xbf" + raw
    with open(os.path.join(OUT, "reissue", name), "wb") as f:
        f.write(raw)


def iso(d):
    return "%04d-%02d-%02d" % d


class Date(tuple):
    """A date written YYYY-MM-DD in the original file."""

    def __str__(self):
        return iso(self)


def rows_of(n, month, first_id, id_format="BNS%06d"):
    out = []
    for i in range(n):
        out.append([id_format % (first_id + i), Date(day(month)), amount(), rng.choice(SUPPLIERS),
                    rng.choice(SERVICES), rng.choice(NBH)])
    return out


# 1. A raw export: Transparency Code layout, CRLF line ends, the file's own total on the last line.
rows = rows_of(300, 4, 1)
write("raw-crlf-totals.csv",
      ["Body Name", "Body", "Date", "Transaction Number", "Amount", "Supplier Name", "Service Area",
       "LSOA"],
      [["Barnsley MBC", "E08000016"] + [r[1], r[0], r[2], r[3], r[4], r[5]] for r in rows],
      eol="\r\n", totals=4)

# 2. A UTF-8 byte order mark, and text beyond ASCII written as UTF-8.
rows = rows_of(200, 5, 1001)
for r in rows[::7]:
    r[3] = "CAFÉ ROYAL £ DEPT"
write("bom.csv", ["Transaction Number", "Date", "Amount", "Supplier Name", "Service Area", "LSOA"],
      rows, bom=True)

# 3. Windows-1252: a non-breaking space after company names, an acute accent, a pound sign byte.
rows = rows_of(200, 6, 2001)
for r in rows[::3]:
    r[3] = r[3] + "\u00a0"
for r in rows[1::5]:
    r[3] = "FARRAH\u00b4S"
write("cp1252.csv", ["Transaction Number", "Date", "Amount", "Supplier Name", "Service Area",
                     "LSOA"], rows, encoding="cp1252", eol="\r\n")

# 4. Invoice lines: every line of a payment carries the same "Transaction No."; some lines are
# identical (two equal items), all are money.
rows = []
txn = 5001
while len(rows) < 400:
    lines = rng.choice([1, 1, 2, 3, 5])
    date, supplier, service, nbh = Date(day(7)), rng.choice(SUPPLIERS), rng.choice(SERVICES), rng.choice(NBH)
    for k in range(lines):
        a = amount()
        rows.append(["%d" % txn, date, a, supplier, service, nbh, "Line item %d" % rng.randint(1, 3)])
        if rng.random() < 0.1:
            rows.append(list(rows[-1]))
    txn += 1
write("invoice-lines.csv", ["Transaction No.", "Date", "Amount", "Supplier Name", "Service Area",
                            "LSOA", "Expenses Type"], rows, eol="\r\n")

# 5. The same header twice: "Supplier Name" (the supplier) and "Supplier Name" (the parent group).
rows = rows_of(150, 8, 6001)
write("two-suppliers.csv", ["Transaction Number", "Date", "Amount", "Supplier Name", "Service Area",
                            "LSOA", "Supplier Name"], [r + ["GROUP " + r[3]] for r in rows])

# 6. A fiscal "Period" (201505) beside the real payment date under a name the defaults do not know.
rows = rows_of(250, 9, 7001)
write("period-and-date.csv",
      ["Period", "Transaction Number", "Date Of Payment", "Amount", "Supplier Name",
       "Service Area", "LSOA"],
      [["2015%02d" % (r[1][1] - 3), r[0], r[1], r[2], r[3], r[4], r[5]] for r in rows])

# 7. One body, two quarters, the header changed between them (the council's typo included).
rows = rows_of(120, 10, 8001)
write("quarter-3.csv", ["Organisational Unit", "Trans No", "Paid Date", "Amount", "LSOA"],
      [[r[4], r[0], r[1], r[2], r[5]] for r in rows])
rows = rows_of(130, 1, 9001)
write("quarter-4.csv", ["Organisatonal Unit", "trans_no", "paid_date", "Net Value", "lsoa"],
      [[r[4], r[0], r[1], r[2], r[5]] for r in rows])
