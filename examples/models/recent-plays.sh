#!/bin/sh
# Plays of members m1..m8 in the last hour, timestamped from now, so the
# churn endpoint has live features to serve on (plays.jsonl of
# examples/features is dated 2026-11-28: its windows have long closed).
#
#   sh examples/models/recent-plays.sh | baton feature ingest plays -
#
# m1..m8 get one to three plays: the model is sure enough of them and
# serves. m9 and m10 have none: the model answers the base rate, not sure
# enough for the endpoint's gate, and the fallback serves them.
now=$(date +%s)
i=1
while [ "$i" -le 8 ]; do
  n=$((i % 3 + 1))
  j=1
  while [ "$j" -le "$n" ]; do
    printf '{"member_id": "m%d", "ts": %d, "title_id": "t%d", "minutes": %d, "market": "US"}\n' "$i" $((now - 600 * j)) "$j" $((10 * i))
    j=$((j + 1))
  done
  i=$((i + 1))
done
