#!/bin/sh
# embed.sh NAME FILE: prints a C file defining `const char NAME[]` with FILE's bytes as a
# string, so a Lua script lives in its own .lua file (readable, lintable, testable with
# redis-cli) and is still compiled into the daemon.
set -eu
name=$1 file=$2
printf '/* generated from %s by tools/embed.sh: edit that file, not this one */\n' "$file"
printf 'const char %s[] =\n' "$name"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$file"
printf '    ;\n'
