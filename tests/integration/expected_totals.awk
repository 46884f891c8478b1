# Independent reference for the integration tests: reads CSV spending exports the way a person
# would check them by hand and prints what the collector's totals must be.
#   gawk -v BODIES="GB-A GB-B" -f expected_totals.awk a.csv b.csv   (one body id per file, in order)
# For every (body, record id) the row with the highest revision wins (the first one on a tie);
# withdrawn rows count nothing. Rows a valid record could not come from (a bad amount, date or
# empty neighbourhood) are skipped, as the agent rejects them. Output lines:
#   total NEIGHBOURHOOD PENCE RECORDS
#   body NEIGHBOURHOOD BODY PENCE RECORDS
#   grand PENCE RECORDS
BEGIN {
    FPAT = "([^,]*)|(\"([^\"]|\"\")*\")"
    split(BODIES, body_of_file, " ")
    file_index = 0
}
FNR == 1 {
    file_index++
    body = body_of_file[file_index]
    delete column
    for (i = 1; i <= NF; i++) {
        name = tolower(unquote($i))
        gsub(/^[ \t\r]+|[ \t\r]+$/, "", name)
        column[name] = i
    }
    c_id = pick("transaction number", "transaction no", "transaction id")
    c_amount = pick("amount", "net amount", "value")
    c_nbh = pick("neighbourhood", "lsoa", "neighbourhood code")
    c_rev = pick("revision")
    c_wd = pick("withdrawn")
    c_date = pick("date", "payment date", "transaction date")
    next
}
function pick(a, b, c) {
    if (a in column) return column[a]
    if (b != "" && b in column) return column[b]
    if (c != "" && c in column) return column[c]
    return 0
}
function unquote(s) {
    if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/""/, "\"", s) }
    return s
}
function cell(i,   s) {
    if (i == 0) return ""
    s = unquote($i)
    gsub(/^[ \t\r]+|[ \t\r]+$/, "", s)
    return s
}
# "£1,234.56", "-12.00", "(12.00)" -> pence; returns "x" when not an amount.
function pence(s,   negative, whole, frac, parts) {
    negative = 0
    if (s ~ /^\(.*\)$/) { negative = 1; s = substr(s, 2, length(s) - 2) }
    if (substr(s, 1, 1) == "-") { negative = !negative; s = substr(s, 2) }
    sub(/^£/, "", s)
    if (substr(s, 1, 1) == "-") { negative = !negative; s = substr(s, 2) }
    if (s !~ /^[0-9]{1,3}(,[0-9]{3})*(\.[0-9]{1,2})?$/ && s !~ /^[0-9]+(\.[0-9]{1,2})?$/) return "x"
    gsub(/,/, "", s)
    split(s, parts, ".")
    whole = parts[1]; frac = parts[2]
    if (length(frac) == 1) frac = frac "0"
    if (frac == "") frac = "00"
    return (negative ? -1 : 1) * (whole * 100 + frac)
}
function valid_date(s,   p, d, m, y, days) {
    if (s ~ /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/) { y = substr(s, 1, 4); m = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0 }
    else if (s ~ /^[0-9]{1,2}\/[0-9]{1,2}\/[0-9]{4}$/) { split(s, p, "/"); d = p[1] + 0; m = p[2] + 0; y = p[3] }
    else if (s ~ /^[0-9]{1,2}-[A-Za-z]{3}-[0-9]{4}$/) {
        split(s, p, "-"); d = p[1] + 0; y = p[3]
        m = index("janfebmaraprmayjunjulaugsepoctnovdec", tolower(p[2]))
        if (m == 0 || (m - 1) % 3) return 0
        m = (m - 1) / 3 + 1
    }
    else return 0
    if (m < 1 || m > 12 || d < 1) return 0
    split("31 29 31 30 31 30 31 31 30 31 30 31", days, " ")
    if (d > days[m]) return 0
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 0
    return 1
}
NF > 1 {
    id = cell(c_id); amount = pence(cell(c_amount)); nbh = cell(c_nbh)
    if (id == "" || amount == "x" || nbh == "" || !valid_date(cell(c_date))) next
    rev = cell(c_rev); if (rev == "") rev = 1; rev += 0
    wd = tolower(cell(c_wd)); withdrawn = (wd == "yes" || wd == "y" || wd == "true" || wd == "1")
    key = body SUBSEP id
    if (key in best_rev && rev <= best_rev[key]) next
    best_rev[key] = rev; best_amount[key] = amount; best_nbh[key] = nbh
    best_body[key] = body; best_wd[key] = withdrawn
}
END {
    for (key in best_rev) {
        if (best_wd[key]) continue
        n = best_nbh[key]; b = best_body[key]
        total[n] += best_amount[key]; count[n]++
        by_body[n SUBSEP b] += best_amount[key]; by_body_count[n SUBSEP b]++
        grand += best_amount[key]; grand_count++
    }
    for (n in total) printf "total %s %d %d\n", n, total[n], count[n]
    for (k in by_body) { split(k, p, SUBSEP); printf "body %s %s %d %d\n", p[1], p[2], by_body[k], by_body_count[k] }
    printf "grand %d %d\n", grand, grand_count
}
