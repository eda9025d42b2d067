#!/bin/sh
# The namespace journeys run in, created once the server answers (run by the one-shot
# `temporal-namespace` service, admin-tools image); an existing one is left as it is. The worker
# registers its search attributes itself at start (worker.py: ensure_search_attributes).
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not serving after $attempt attempts" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" \
    --retention "${TEMPORAL_NAMESPACE_RETENTION:-72h}"
  echo "namespace $NAMESPACE created"
fi
