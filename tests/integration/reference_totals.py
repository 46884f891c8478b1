#!/usr/bin/env python3
"""An independent reference for test_published_exports.sh: the totals a person checking the files
by hand would expect, in the lines lib.sh's `actual` prints from the collector:
    total NEIGHBOURHOOD PENCE RECORDS / body NEIGHBOURHOOD BODY PENCE RECORDS / grand PENCE RECORDS

    reference_totals.py SPEC.json

SPEC is a list of {"path", "body", "encoding" (a Python codec), "id", "date", "amount",
"neighbourhood": header names (case and spaces ignored), "lines": true when every row is a payment
of its own}. Rows without id and date are the file's own totals: checked to be the sum of the
other rows, then skipped. Otherwise a (body, id) is one payment: a row repeating an earlier row
exactly is the same payment. Nothing here shares code with the agent."""
import csv
import io
import json
import sys
from collections import defaultdict
from decimal import Decimal


def norm(name):
    return " ".join(name.replace("_", " ").replace(".", " ").split()).lower()


def pence(text):
    text = text.strip().replace("£", "").replace(",", "")
    negative = text.startswith("(") or text.startswith("-")
    text = text.strip("()-")
    value = int((Decimal(text) * 100).to_integral_exact())
    return -value if negative else value


def main():
    spec = json.load(open(sys.argv[1]))
    totals = defaultdict(lambda: [0, 0])  # (nbh, body) -> [pence, records]
    for item in spec:
        raw = open(item["path"], "rb").read()
        text = raw.decode(item["encoding"], errors="replace")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header = [norm(h) for h in rows[0]]
        col = {k: header.index(norm(item[k])) for k in ("id", "date", "amount", "neighbourhood")}
        seen = set()
        payments = []
        for row in rows[1:]:
            if not any(c.strip() for c in row):
                continue
            row = row + [""] * (len(header) - len(row))
            if not row[col["id"]].strip() and not row[col["date"]].strip():
                payments.append(("TOTAL", pence(row[col["amount"]]), None))
                continue
            key = (item["body"], row[col["id"]].strip(), tuple(c.strip() for c in row))
            if not item.get("lines") and key in seen:
                continue  # the same payment written twice
            seen.add(key)
            payments.append(("ROW", pence(row[col["amount"]]), row[col["neighbourhood"]].strip()))
        rows_sum = sum(p for kind, p, _ in payments if kind == "ROW")
        for kind, p, _ in payments:
            if kind == "TOTAL" and p != rows_sum:
                sys.exit("%s: a totals row of %d pence is not the sum %d" % (item["path"], p, rows_sum))
        if not item.get("lines"):
            ids = [r[col["id"]].strip() for r in rows[1:] if r and r[col["id"]].strip()]
            distinct_rows = {(r[col["id"]].strip(), tuple(c.strip() for c in r)) for r in rows[1:] if r and r[col["id"]].strip()}
            if len(set(ids)) != len({i for i, _ in distinct_rows}) or len(set(ids)) != len(distinct_rows):
                sys.exit("%s: ids repeat with other content; mark it lines" % item["path"])
        for kind, p, nbh in payments:
            if kind == "ROW":
                totals[(nbh, item["body"])][0] += p
                totals[(nbh, item["body"])][1] += 1
    by_nbh = defaultdict(lambda: [0, 0])
    grand = [0, 0]
    for (nbh, body), (p, n) in sorted(totals.items()):
        print("body %s %s %d %d" % (nbh, body, p, n))
        by_nbh[nbh][0] += p
        by_nbh[nbh][1] += n
        grand[0] += p
        grand[1] += n
    for nbh, (p, n) in sorted(by_nbh.items()):
        print("total %s %d %d" % (nbh, p, n))
    print("grand %d %d" % tuple(grand))


main()
