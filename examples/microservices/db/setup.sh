#!/bin/sh
# The data directories, made once: postgres' own (mode 0700, as it insists).
set -eu
data=$1
mkdir -p "$data/pg"
chown postgres:postgres "$data/pg"
chmod 0700 "$data/pg"
