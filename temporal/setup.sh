#!/bin/sh
# First-start setup of the Temporal server: the namespace and the search attributes the decision
# workflow sets. Idempotent; run by compose's temporal-setup service (temporalio/admin-tools) and by
# `npm run cluster` (with TEMPORAL_CLI naming the temporal CLI it found or built).
set -eu
address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
# How long a closed decision's history is kept, in hours: at least DECISION_TTL_SECONDS (7 days by
# default), or the API shows finished decisions that can no longer be retried, replayed or reconciled.
retention="${TEMPORAL_NAMESPACE_RETENTION_HOURS:-168}"

cli="${TEMPORAL_CLI:-temporal}"

tries=0
until health=$("$cli" operator cluster health --address "$address" 2>&1); do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "The Temporal server at $address did not answer within 120 s: $health" >&2
    exit 1
  fi
  sleep 1
done

ns() { "$cli" operator namespace "$@" --namespace "$namespace" --address "$address"; }
# A namespace made earlier may have another retention: raise it to ours, but never shorten a
# longer one an operator chose.
if ! ns create --retention "${retention}h" >/dev/null 2>&1; then
  current=$(ns describe -o json | sed -n 's/.*"workflowExecutionRetentionTtl": *"\([0-9]*\)s".*/\1/p')
  if [ "${current:-0}" -lt $((retention * 3600)) ]; then ns update --retention "${retention}h"; fi
fi

for name in DecisionStatus DecisionPhase DecisionOwner; do
  "$cli" operator search-attribute list --namespace "$namespace" --address "$address" | grep -q "$name" ||
    "$cli" operator search-attribute create --namespace "$namespace" --address "$address" \
      --name "$name" --type Keyword
done
echo "Temporal namespace $namespace is ready: retention at least ${retention}h, and its search attributes."
