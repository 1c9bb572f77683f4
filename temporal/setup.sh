#!/bin/sh
# First-start setup of the compose Temporal server: the namespace and the search attributes the
# decision workflow sets. Idempotent; run by the temporal-setup service (temporalio/admin-tools).
set -eu
address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
# How long a closed decision's history is kept, in hours: at least DECISION_TTL_SECONDS (7 days by
# default), or the API shows finished decisions that can no longer be retried, replayed or reconciled.
retention="${TEMPORAL_NAMESPACE_RETENTION_HOURS:-168}"

until temporal operator cluster health --address "$address" >/dev/null 2>&1; do sleep 1; done

ns() { temporal operator namespace "$@" --namespace "$namespace" --address "$address"; }
# auto-setup may have created the namespace first, with its own retention: raise that to ours, but
# never shorten a longer one an operator chose.
if ! ns create --retention "${retention}h" >/dev/null 2>&1; then
  current=$(ns describe -o json | sed -n 's/.*"workflowExecutionRetentionTtl": *"\([0-9]*\)s".*/\1/p')
  if [ "${current:-0}" -lt $((retention * 3600)) ]; then ns update --retention "${retention}h"; fi
fi

for name in DecisionStatus DecisionPhase DecisionOwner; do
  temporal operator search-attribute list --namespace "$namespace" --address "$address" | grep -q "$name" ||
    temporal operator search-attribute create --namespace "$namespace" --address "$address" \
      --name "$name" --type Keyword
done
echo "Temporal namespace $namespace is ready: retention at least ${retention}h, and its search attributes."
