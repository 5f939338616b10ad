#!/bin/sh
# Debian's postgres, whatever its major version: initdb on the first start,
# then exec (the same pid, so its sd_notify READY=1 reaches supd).
set -eu
data=$1
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -e "$data/PG_VERSION" ]; then
    "$bin/initdb" -D "$data" -U postgres -A trust >/dev/null
    # Clients on the backend network, without a password: an example, not a
    # production setup (there: a password from [credentials]).
    echo "host all all samenet trust" >> "$data/pg_hba.conf"
fi
exec "$bin/postgres" -D "$data" -k /tmp -c listen_addresses='*' -c fsync=off
