#!/usr/bin/env bash
# gen-control-catalog.sh: build the control-catalog migration from the
# compliance crosswalk (CROSSWALK.md).
#
#   gen-control-catalog.sh CROSSWALK.md [OUTPUT.sql]
#
# OUTPUT defaults to 1002_control_catalog.sql next to this script. The output
# depends only on the input file and this script (no dates, no locale), so
# re-running it on an unchanged crosswalk gives a byte-identical file.
#
# What is read from CROSSWALK.md:
#   - the "Machine-readable rows (CSV)" block: one control_requirement row per
#     CSV row, loaded as it stands (framework, requirement id, title, strength);
#   - the "Framework versions" table: one control_framework row per framework;
#   - each "### IC-nnn Name" section: the control's name, its "SCF anchor
#     controls" line, and its table, whose "source" column fills
#     control_requirement.source (matched on control, framework and id).
# Control descriptions are written below, in this script.
#
# The generated SQL is a full sync: it upserts every framework, control and
# crosswalk row and deletes crosswalk rows that are no longer in the CSV. To
# carry a changed crosswalk to databases that already applied 1002, generate it
# under a new migration number as well (e.g. 1004_control_catalog.sql).
#
# Fails (exit 1, nothing written) on a malformed CSV row, an unknown strength,
# framework or control, or a duplicate (control, framework, requirement id).
# Prints a warning, and still writes the file, when a CSV row and its markdown
# table row disagree or one of them is missing.
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 CROSSWALK.md [OUTPUT.sql]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
in=$1
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/1002_control_catalog.sql}
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }

# Descriptions of the internal controls (id <TAB> description).
descriptions=$(cat <<'EOF'
IC-013	Anti-malware software is installed on every managed endpoint, runs with real-time protection, keeps its signatures current, and its detections are acted on.
IC-024	Data stored on endpoint fixed disks and storage media is encrypted at rest (full-disk or volume encryption such as BitLocker or FileVault).
IC-031	An accurate, current inventory of the hardware endpoints the organization manages is maintained, including whether each device is still reporting.
IC-032	Managed assets are categorized by type, role and criticality, so that protection is prioritized by their importance and risk.
IC-038	Vulnerabilities in operating systems and software are identified, ranked by severity and tracked until remediated.
IC-051	Endpoints run protective security software (antivirus or EDR) that is enabled, monitored and cannot be switched off by users.
IC-052	Endpoints follow a secure baseline configuration with enforced security settings (such as disk encryption), and deviations are detected.
IC-053	Security patches for operating systems and third-party software are installed within defined timeframes, and failed installations are followed up.
IC-060	Backups of systems and data are taken on a regular schedule and the backup jobs complete successfully.
IC-061	Backup results are monitored and backups are tested for integrity and restorability.
EOF
)

tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT

sum=$(sha256sum "$in" | cut -d' ' -f1)

printf '%s\n' "$descriptions" | awk -v src_name="$(basename "$in")" -v src_sum="$sum" '
function die(msg) { printf "gen-control-catalog: %s\n", msg > "/dev/stderr"; failed = 1; exit 1 }
function warn(msg) { printf "gen-control-catalog: warning: %s\n", msg > "/dev/stderr" }
function q(s) { gsub(/\047/, "\047\047", s); return "\047" s "\047" }
function qn(s) { return s == "" ? "NULL" : q(s) }
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }

# Splits a markdown table row "| a | b | c |" into cells[1..n]; returns n.
function md_cells(line, cells,   n, i) {
  line = trim(line)
  sub(/^\|/, "", line); sub(/\|$/, "", line)
  n = split(line, cells, /\|/)
  for (i = 1; i <= n; i++) cells[i] = trim(cells[i])
  return n
}

# Splits one RFC 4180 CSV line into fields[1..n]; returns n, or -1 when a
# quoted field is not closed.
function csv_fields(line, fields,   n, i, c, f, inq, len) {
  n = 0; f = ""; inq = 0; len = length(line)
  for (i = 1; i <= len; i++) {
    c = substr(line, i, 1)
    if (inq) {
      if (c == "\"") {
        if (substr(line, i + 1, 1) == "\"") { f = f "\""; i++ }
        else inq = 0
      } else f = f c
    } else if (c == "\"") inq = 1
    else if (c == ",") { fields[++n] = f; f = "" }
    else f = f c
  }
  if (inq) return -1
  fields[++n] = f
  return n
}

# First input: the descriptions.
FNR == NR {
  t = index($0, "\t")
  if (t > 0) desc[substr($0, 1, t - 1)] = substr($0, t + 1)
  next
}

{ sub(/\r$/, "") }

# --- the CSV block ---------------------------------------------------------
incsv && /^```/ { incsv = 0; csvdone = 1; next }
incsv {
  if ($0 == "") next
  n = csv_fields($0, f)
  if (!csvhdr) {
    if ($0 != "control_id,framework,requirement_id,title,strength")
      die(sprintf("line %d: unexpected CSV header: %s", FNR, $0))
    csvhdr = 1; next
  }
  if (n != 5) die(sprintf("line %d: CSV row has %d fields, want 5: %s", FNR, n, $0))
  for (i = 1; i <= 5; i++) if (i != 4) f[i] = trim(f[i])
  if (!(f[5] in strengths))
    die(sprintf("line %d: unknown strength \"%s\"", FNR, f[5]))
  k = f[1] SUBSEP f[2] SUBSEP f[3]
  if (k in rowline)
    die(sprintf("line %d: duplicate row (%s, %s, %s), first at line %d", FNR, f[1], f[2], f[3], rowline[k]))
  nrows++
  rowline[k] = FNR; rowkey[nrows] = k
  r_ctl[nrows] = f[1]; r_fw[nrows] = f[2]; r_req[nrows] = f[3]
  r_title[nrows] = f[4]; r_str[nrows] = f[5]; r_line[nrows] = FNR
  next
}
/^## Machine-readable rows/ { insection = 0; inversions = 0; csvheading = 1; next }
csvheading && /^```csv[ \t]*$/ { incsv = 1; next }

# --- the framework versions table -----------------------------------------
/^## Framework versions/ { inversions = 1; next }
inversions && /^#/ { inversions = 0 }
inversions && /^\|/ {
  n = md_cells($0, c)
  if (c[1] == "framework" || c[1] ~ /^-+$/) next
  if (n != 3) die(sprintf("line %d: framework table row has %d cells, want 3", FNR, n))
  nfw++; fw_name[nfw] = c[1]; fw_ver[nfw] = c[2]; fw_title[nfw] = c[3]; fw_known[c[1]] = 1
  next
}

# --- per-control sections --------------------------------------------------
/^### IC-[0-9][0-9][0-9] / {
  insection = 1
  ctl = $2
  name = $0; sub(/^### IC-[0-9][0-9][0-9] +/, "", name); name = trim(name)
  if (ctl in ctl_name) die(sprintf("line %d: control %s has two sections", FNR, ctl))
  nctl++; ctl_id[nctl] = ctl; ctl_name[ctl] = name
  next
}
/^#/ { insection = 0 }
insection && /^SCF anchor controls:/ {
  a = $0; sub(/^SCF anchor controls:[ \t]*/, "", a); sub(/\.[ \t]*$/, "", a)
  ctl_anchor[ctl] = a
  next
}
insection && /^\|/ {
  n = md_cells($0, c)
  if (c[1] == "framework" || c[1] ~ /^-+$/) next
  if (n != 5) die(sprintf("line %d: %s table row has %d cells, want 5", FNR, ctl, n))
  k = ctl SUBSEP c[1] SUBSEP c[2]
  if (k in md_line) die(sprintf("line %d: duplicate table row (%s, %s, %s)", FNR, ctl, c[1], c[2]))
  md_line[k] = FNR; md_title[k] = c[3]; md_str[k] = c[4]; md_src[k] = c[5]
  nmd++; md_key[nmd] = k
  next
}

BEGIN {
  strengths["direct"]; strengths["partial"]; strengths["direct-judgment"]
  strengths["partial-judgment"]; strengths["none"]
}

END {
  if (failed) exit 1
  if (!csvdone) die("no complete ```csv block after \"## Machine-readable rows\"")
  if (nrows == 0) die("the CSV block has no rows")
  if (nfw == 0) die("no \"Framework versions\" table found")

  for (i = 1; i <= nrows; i++) {
    if (!(r_ctl[i] in ctl_name))
      die(sprintf("line %d: control %s has no \"### %s Name\" section", r_line[i], r_ctl[i], r_ctl[i]))
    if (!(r_fw[i] in fw_known))
      die(sprintf("line %d: framework \"%s\" is not in the framework versions table", r_line[i], r_fw[i]))
    k = rowkey[i]
    if (!(k in md_line)) {
      warn(sprintf("line %d: (%s, %s, %s) has no row in the %s table; source left NULL", r_line[i], r_ctl[i], r_fw[i], r_req[i], r_ctl[i]))
      r_src[i] = ""
      continue
    }
    r_src[i] = md_src[k]
    if (md_title[k] != r_title[i])
      warn(sprintf("line %d: title differs from table line %d for (%s, %s, %s); CSV kept", r_line[i], md_line[k], r_ctl[i], r_fw[i], r_req[i]))
    if (md_str[k] != r_str[i])
      warn(sprintf("line %d: strength %s differs from table line %d (%s) for (%s, %s, %s); CSV kept", r_line[i], r_str[i], md_line[k], md_str[k], r_ctl[i], r_fw[i], r_req[i]))
  }
  for (j = 1; j <= nmd; j++)
    if (!(md_key[j] in rowline)) {
      split(md_key[j], p, SUBSEP)
      warn(sprintf("line %d: table row (%s, %s, %s) is not in the CSV block; not loaded", md_line[md_key[j]], p[1], p[2], p[3]))
    }
  for (j = 1; j <= nctl; j++)
    if (!(ctl_id[j] in desc))
      die(sprintf("control %s has no description in gen-control-catalog.sh", ctl_id[j]))

  print "-- 1002_control_catalog.sql: internal controls and their crosswalk to"
  print "-- framework requirements."
  print "--"
  printf "-- GENERATED by gen-control-catalog.sh from %s; do not edit by hand.\n", src_name
  printf "-- Source sha256: %s\n", src_sum
  printf "-- %d frameworks, %d internal controls, %d crosswalk rows.\n", nfw, nctl, nrows
  print "--"
  print "-- A full sync: re-applying it (or a copy under a later number) brings the"
  print "-- catalog to exactly this content. Crosswalk rows are loaded from the CSV"
  print "-- block as they stand; source comes from the per-control tables."
  print ""
  print "INSERT INTO public.control_framework (framework, version_used, title_meaning, position)"
  print "VALUES"
  for (j = 1; j <= nfw; j++)
    printf "  (%s, %s, %s, %d)%s\n", q(fw_name[j]), q(fw_ver[j]), q(fw_title[j]), j, (j < nfw ? "," : "")
  print "ON CONFLICT (framework) DO UPDATE"
  print "  SET version_used = EXCLUDED.version_used,"
  print "      title_meaning = EXCLUDED.title_meaning,"
  print "      position = EXCLUDED.position;"
  print ""
  print "INSERT INTO public.internal_control (id, name, description, scf_anchors)"
  print "VALUES"
  for (j = 1; j <= nctl; j++) {
    x = ctl_id[j]
    printf "  (%s, %s,\n   %s,\n   %s)%s\n", q(x), q(ctl_name[x]), q(desc[x]), qn(ctl_anchor[x]), (j < nctl ? "," : "")
  }
  print "ON CONFLICT (id) DO UPDATE"
  print "  SET name = EXCLUDED.name,"
  print "      description = EXCLUDED.description,"
  print "      scf_anchors = EXCLUDED.scf_anchors;"
  print ""
  print "WITH src (control_id, framework, requirement_id, title, strength, source, position) AS ("
  print "  VALUES"
  for (i = 1; i <= nrows; i++)
    printf "  (%s, %s, %s,\n   %s,\n   %s, %s, %d)%s\n", q(r_ctl[i]), q(r_fw[i]), q(r_req[i]), q(r_title[i]), q(r_str[i]), (r_src[i] == "" ? "NULL::text" : q(r_src[i])), i, (i < nrows ? "," : "")
  print "), removed AS ("
  print "  DELETE FROM public.control_requirement r"
  print "   WHERE NOT EXISTS (SELECT 1 FROM src"
  print "                      WHERE src.control_id = r.control_id"
  print "                        AND src.framework = r.framework"
  print "                        AND src.requirement_id = r.requirement_id)"
  print ")"
  print "INSERT INTO public.control_requirement"
  print "  (control_id, framework, requirement_id, title, strength, source, position)"
  print "SELECT control_id, framework, requirement_id, title, strength, source, position"
  print "  FROM src"
  print "ON CONFLICT (control_id, framework, requirement_id) DO UPDATE"
  print "  SET title = EXCLUDED.title,"
  print "      strength = EXCLUDED.strength,"
  print "      source = EXCLUDED.source,"
  print "      position = EXCLUDED.position;"
}
' - "$in" > "$tmp"

mv "$tmp" "$out"
trap - EXIT
echo "gen-control-catalog: wrote $out" >&2
