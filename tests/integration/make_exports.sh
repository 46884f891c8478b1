# make_exports.sh OUT_DIR ROWS SEED: writes three exports (council, nhs, police) of about ROWS rows
# each into OUT_DIR, with repeated rows, corrections (higher revisions, also in a second file) and
# withdrawals, for the end-to-end tests. Deterministic for a seed. Also writes
# OUT_DIR/corrections.csv: revisions 2 and 3 of some council rows, dropped later.
set -euo pipefail
out=$1 rows=$2 seed=$3
mkdir -p "$out"
gawk -v rows="$rows" -v seed="$seed" -v out="$out" 'BEGIN {
  srand(seed)
  header = "Date,Transaction Number,Amount,Supplier Name,Service Area,Neighbourhood,Poolable,Revision,Withdrawn"
  split("council nhs police", names, " ")
  split("Adult Social Care|Community Health|Neighbourhood Policing|Housing|Youth Services", services, "|")
  for (f = 1; f <= 3; f++) {
    file = out "/" names[f] ".csv"
    print header > file
    for (i = 0; i < rows; i++) {
      id = toupper(substr(names[f], 1, 3)) sprintf("%07d", i)
      line = row(id, 1, 0)
      print line > file
      if (rand() < 0.05) print line > file            # an identical repeated row
      if (f == 1 && rand() < 0.03) keep[++kept] = id   # corrected later
    }
    close(file)
  }
  file = out "/corrections.csv"
  print header > file
  for (k = 1; k <= kept; k++) {
    print row(keep[k], 2, 0) > file
    if (k % 4 == 0) print row(keep[k], 3, 1) > file  # some withdrawn after the correction
  }
  close(file)
}
function row(id, revision, withdrawn,   pence, amount) {
  pence = int(rand() * 2000000) - 100000
  amount = sprintf("%s%d.%02d", pence < 0 ? "-" : "", (pence < 0 ? -pence : pence) / 100, (pence < 0 ? -pence : pence) % 100)
  return sprintf("2013-%02d-%02d,%s,%s,SUPPLIER %d,%s,E0100%04d,%s,%d,%s",
                 int(rand() * 12) + 1, int(rand() * 28) + 1, id, amount, int(rand() * 50),
                 services[int(rand() * 5) + 1], int(rand() * 60), rand() < 0.3 ? "yes" : "no",
                 revision, withdrawn ? "yes" : "no")
}'
