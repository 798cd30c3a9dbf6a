# TAP-style results for the shell tests (sourced, bash): one line per check, a count at the end.
pass=0
fail=0
started=$SECONDS
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
step() { echo "# [$((SECONDS - started)) s] $*"; }
die() { echo "not ok - $*"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
# expect WHAT COMMAND...: ok when COMMAND succeeds.
expect() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
