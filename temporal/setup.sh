#!/bin/sh
# First-start setup of the compose Temporal server: the namespace and the search attributes the
# decision workflow sets. Idempotent; run by the temporal-setup service (temporalio/admin-tools).
set -eu
address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"

until temporal operator cluster health --address "$address" >/dev/null 2>&1; do sleep 1; done

temporal operator namespace describe --namespace "$namespace" --address "$address" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$namespace" --retention 72h --address "$address"

for name in DecisionStatus DecisionPhase; do
  temporal operator search-attribute list --namespace "$namespace" --address "$address" | grep -q "$name" ||
    temporal operator search-attribute create --namespace "$namespace" --address "$address" \
      --name "$name" --type Keyword
done
echo "Temporal namespace $namespace is ready, with its search attributes."
