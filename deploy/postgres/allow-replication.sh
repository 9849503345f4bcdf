#!/bin/sh
# Run once by the postgres image when it creates the database: lets the read replica
# (docker-compose.yml, postgres-replica) stream from this server over the compose network.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
