#!/bin/sh
# check-layers.sh: the daemon's layers, bottom to top, and the rule that a file includes only
# its own layer and the layers below it. common/ is below every daemon layer; clients/ may
# include only common/ and clients/lib/. Prints one line per offending include; exits 1 if any.
#   common < base < store < net < core < reports, admin < server
set -eu
cd "$(dirname "$0")/.."
rank() {
    case $1 in
    common) echo 0 ;; base) echo 1 ;; store) echo 2 ;; net) echo 3 ;;
    core) echo 4 ;; reports) echo 5 ;; admin) echo 5 ;; server) echo 6 ;; *) echo 99 ;;
    esac
}
bad=0
for f in $(git ls-files 'common/*.[ch]' 'daemon/*.[ch]' 'clients/*.[ch]'); do
    case $f in
    common/*) own=common ;;
    daemon/*) own=$(echo "$f" | cut -d/ -f2) ;;
    clients/*) own=client ;;
    esac
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[a-z_.]*"$/\1/p' "$f"); do
        if [ "$own" = client ]; then
            [ "$inc" = common ] && continue
            echo "$f: includes $inc/ (clients may include only common/)"
            bad=1
            continue
        fi
        if [ "$(rank "$inc")" -gt "$(rank "$own")" ]; then
            echo "$f: $own includes $inc/, a higher layer"
            bad=1
        fi
    done
done
exit $bad
