#!/usr/bin/env python3
"""report_check: checks one page of `totalplace report` against the CLI (test_report.sh).

Usage: report_check.py figures PAGE WHERE [FISCAL_YEAR] -- CLI SOURCE...
    Reads the page's tables and headline with html.parser and asks the real CLI (CLI SOURCE... is
    the command with its --db or --collector) the same questions as CSV: every figure of the page
    must equal the CLI's to the penny. WHERE is a neighbourhood code, or place=NAME for a place
    (then the members and the per-resident figure are compared with `totals --by neighbourhood`
    and `places`). Prints the number of figures compared.
Usage: report_check.py png FILE WIDTH HEIGHT
    Decodes the PNG with zlib (standard library only), prints its size, distinct colours and the
    share of non-white pixels, and fails when it is blank or lacks the charts' colours.
"""
import csv
import io
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser


class Page(HTMLParser):
    """The text of every cell of every table with an id, row by row, and of dd elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.headline = {}, {}
        self.table = self.row = self.cell = self.dd = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "id" in attrs:
            self.table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self.table is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag == "dd" and "id" in attrs:
            self.dd, self.cell = attrs["id"], []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.table.append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        elif tag == "dd" and self.dd:
            self.headline[self.dd] = "".join(self.cell).strip()
            self.dd = self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def pence(text):
    """'£1,234.56', '-£12.00' (the page) or '1234.56', '-12.00' (CSV) as integer pence."""
    text = text.split(" ")[0].replace("£", "").replace(",", "")
    negative = text.startswith("-")
    whole, fraction = text.lstrip("-").split(".")
    assert len(fraction) == 2, text
    value = int(whole) * 100 + int(fraction)
    return -value if negative else value


def count(text):
    return int(text.replace(",", ""))


def share(text):
    """'12.3%' or '12.3' as per-mille; 'n/a' as None."""
    text = text.split(" ")[0].rstrip("%")
    return None if text == "n/a" else int(text.replace(".", ""))


def figures(argv):
    split = argv.index("--")
    page_file, where = argv[0], argv[1]
    place = where[len("place="):] if where.startswith("place=") else None
    scope = ["--place", place] if place else ["--neighbourhood", where]
    fiscal_year = argv[2] if split > 2 else None
    cli = argv[split + 1:]
    filters = ["--fiscal-year", fiscal_year] if fiscal_year else []

    def ask(*args):
        out = subprocess.run(cli + ["--format", "csv"] + list(args), check=True,
                             capture_output=True, text=True, encoding="utf-8").stdout
        return list(csv.DictReader(io.StringIO(out)))

    page = Page()
    page.feed(open(page_file, encoding="utf-8").read())
    compared, problems = 0, []

    def same(what, got, expected):
        nonlocal compared
        compared += 1
        if got != expected:
            problems.append("%s: the page says %r, the CLI %r" % (what, got, expected))

    body_rows = page.tables["bodies"][1:]
    budget_rows = page.tables["budgets"][1:]
    month_rows = page.tables["months-table"][1:]
    member_rows = page.tables["neighbourhoods"][1:]

    total = ask("totals", *scope, *filters)[0]
    same("headline total", pence(page.headline["total"]), pence(total["total"]))
    same("headline records", count(page.headline["records"]), int(total["records"]))
    poolable = {r["poolable"]: r for r in
                ask("totals", *scope, "--by", "poolable", *filters)}
    poolable_pence = pence(poolable["yes"]["total"]) if "yes" in poolable else 0
    share_text = page.headline["poolable-share"]
    same("headline poolable", pence(share_text[share_text.index("(") + 1:share_text.index(")")]),
         poolable_pence)

    # Bodies: the pooling answer (total, poolable, share, records) when the whole period is asked;
    # pooling takes no fiscal year, so a year's page is compared with totals --poolable yes.
    by_body = ask("totals", *scope, "--by", "body", *filters)
    same("bodies count", count(page.headline["bodies-count"]), len(by_body))
    same("bodies listed", sorted(r[0] for r in body_rows), sorted(r["body"] for r in by_body))
    if fiscal_year:
        yes = {r["body"]: r for r in ask("totals", *scope, "--by", "body",
                                         "--poolable", "yes", *filters)}
        expected = {r["body"]: (pence(r["total"]), pence(yes[r["body"]]["total"]) if r["body"] in yes
                                else 0, int(r["records"])) for r in by_body}
    else:
        pooling = ask("pooling", *scope)
        expected = {r["body"]: (pence(r["total"]), pence(r["poolable"]), int(r["records"]))
                    for r in pooling}
        for r in pooling:
            row = next(b for b in body_rows if b[0] == r["body"])
            same("share of %s" % r["body"], share(row[4]), share(r["share"]))
    for row in body_rows:
        total_p, pool_p, records = expected[row[0]]
        same("total of %s" % row[0], pence(row[1]), total_p)
        same("poolable of %s" % row[0], pence(row[2]), pool_p)
        same("not poolable of %s" % row[0], pence(row[3]), total_p - pool_p)
        same("records of %s" % row[0], count(row[5]), records)

    # Budgets: body by service, all and poolable only.
    expected_budgets = {}
    for body in (r["body"] for r in by_body):
        base = ["totals", *scope, "--body", body, "--by", "service"]
        yes = {r["service"]: pence(r["total"]) for r in ask(*base, "--poolable", "yes", *filters)}
        for r in ask(*base, *filters):
            expected_budgets[(body, r["service"])] = (pence(r["total"]), yes.get(r["service"], 0),
                                                      int(r["records"]))
    same("budgets listed", sorted((r[0], r[1]) for r in budget_rows), sorted(expected_budgets))
    for row in budget_rows:
        total_p, pool_p, records = expected_budgets.get((row[0], row[1]), (None, None, None))
        same("budget %s / %s total" % (row[0], row[1]), pence(row[3]), total_p)
        same("budget %s / %s poolable" % (row[0], row[1]), pence(row[4]), pool_p)
        same("budget %s / %s records" % (row[0], row[1]), count(row[7]), records)
        word = "no" if pool_p == 0 else "yes" if pool_p == total_p else "in part"
        same("budget %s / %s could be pooled" % (row[0], row[1]), row[2], word)

    by_month = ask("totals", *scope, "--by", "month", *filters)
    same("months", [(r[0], pence(r[1]), count(r[2])) for r in month_rows],
         [(r["month"], pence(r["total"]), int(r["records"])) for r in by_month])
    compared += 2 * len(month_rows)
    if by_month:
        period = page.headline["period"]
        same("period from", period.split(" ")[0], by_month[0]["month"])
        if len(by_month) > 1:
            same("period to", period.split(" ")[2], by_month[-1]["month"])

    if place:
        members = ask("totals", *scope, "--by", "neighbourhood", *filters)
        same("members", [(r[0], pence(r[1]), count(r[3])) for r in member_rows],
             [(r["neighbourhood"], pence(r["total"]), int(r["records"])) for r in members])
        # Per resident: only when every member has a population; pence rounded half away from
        # zero, worked out here from the CLI's total and the places answer's residents.
        row = next(r for r in ask("places") if r["place"] == place)
        per_resident = page.headline["per-resident"]
        if row["unpopulated"] != "0":
            same("per resident", per_resident.split(" ")[0], "n/a")
        else:
            residents, amount = int(row["residents"]), pence(total["total"])
            magnitude = (abs(amount) * 2 + residents) // (2 * residents)
            same("per resident", pence(per_resident), -magnitude if amount < 0 else magnitude)
            same("residents", count(per_resident.split("(")[1].split(" ")[0]), residents)
            if not fiscal_year:
                same("per resident as places says", pence(per_resident),
                     int(row["per resident (p)"]))
    else:
        same("members", [(r[0], pence(r[1]), count(r[3])) for r in member_rows],
             [(where, pence(total["total"]), int(total["records"]))])

    for p in problems:
        print("  " + p, file=sys.stderr)
    if len(body_rows) < 2 or not budget_rows or not month_rows:
        print("  the page shows too little to check: %d bodies, %d budgets, %d months"
              % (len(body_rows), len(budget_rows), len(month_rows)), file=sys.stderr)
        return 1
    print("%d figures compared (%d bodies, %d budgets, %d months)"
          % (compared, len(body_rows), len(budget_rows), len(month_rows)))
    return 1 if problems else 0


def png(argv):
    path, want_width, want_height = argv[0], int(argv[1]), int(argv[2])
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat = 8, []
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        at += 12 + length
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    previous = bytearray(stride)
    colours, non_white, at = {}, 0, 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = previous[i], previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels = bytes(line)
        for x in range(0, stride, channels):
            rgb = pixels[x:x + 3]
            colours[rgb] = colours.get(rgb, 0) + 1
        previous = line
    non_white = sum(n for rgb, n in colours.items() if rgb != b"\xff\xff\xff")
    share_non_white = non_white * 1000 // (width * height)
    print("PNG %dx%d, %d bytes, %d distinct colours, %d.%d%% of pixels not white"
          % (width, height, len(data), len(colours), share_non_white // 10, share_non_white % 10))
    wanted = {"poolable bars #2166ac": b"\x21\x66\xac", "not poolable bars #f4a582": b"\xf4\xa5\x82",
              "month bars #4393c3": b"\x43\x93\xc3"}
    missing = [name for name, rgb in wanted.items() if colours.get(rgb, 0) < 50]
    problems = []
    if (width, height) != (want_width, want_height):
        problems.append("the PNG is %dx%d, not %dx%d" % (width, height, want_width, want_height))
    if len(colours) < 16:
        problems.append("only %d distinct colours: blank or nearly" % len(colours))
    if share_non_white < 20:
        problems.append("only %d per-mille of pixels are not white" % share_non_white)
    if missing:
        problems.append("the charts are not drawn: no %s" % ", ".join(missing))
    for p in problems:
        print("  " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    mode = sys.argv[1]
    sys.exit(figures(sys.argv[2:]) if mode == "figures" else png(sys.argv[2:]))
