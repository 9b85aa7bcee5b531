#!/bin/bash
# Reads the node's DMS pod by name three ways that list or watch: a watch
# of one object, a list with a metadata.name field selector, and a wait for
# its deletion. kubectl sends each list and watch with that field selector,
# so the API server authorizes them for the name, and a Role that names the
# pod allows them.
set -uo pipefail
ns=dpf-operator-system
pod=dpu-worker-1-dms
kubectl get pod "$pod" -n "$ns" -w --request-timeout=2s > /dev/null 2>&1
kubectl get pods -n "$ns" --field-selector "metadata.name=$pod" -o name
kubectl wait --for=delete "pod/$pod" -n "$ns" --timeout=1s > /dev/null 2>&1
echo "done"
