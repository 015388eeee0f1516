#!/usr/bin/env bash
# Start Mini-XDR on AWS after a stop: RDS, NATS, every role; then check it answers.
set -euo pipefail
XDR_SCRIPT=start
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: deploy/aws/start.sh [--dry-run] [--help]

Starts the RDS instance if it is stopped and waits until it is available, scales NATS
(when in-cluster) and every role back to its replica count, waits for the rollouts,
checks /readyz of the API, and prints how to reach it.

Options:
  -n, --dry-run   print every command that would change something, change nothing.
                  Read-only calls (sts get-caller-identity, describe-db-instances,
                  kubectl auth can-i / get) still run, so the plan matches reality.
  -h, --help      this text.

Environment (defaults in brackets):
  XDR_AWS_REGION           AWS region (or AWS_REGION)                  [required]
  XDR_RDS_INSTANCE         RDS DB instance identifier                  [required]
  XDR_NAMESPACE            Kubernetes namespace                        [mini-xdr]
  XDR_KUBE_CONTEXT         kubectl context                             [current context]
  XDR_REPLICAS_API         replicas of xdr-api                         [2]
  XDR_REPLICAS_INGESTOR    replicas of xdr-ingestor                    [2]
  XDR_REPLICAS_PROJECTOR   replicas of xdr-projector                   [1]
  XDR_REPLICAS_RELAY       replicas of xdr-relay (keep 1)              [1]
  XDR_REPLICAS_DETECTOR    pods of xdr-detector; must equal its        [2]
                           XDR_DETECTOR_PARTITIONS (deploy/k8s)
  XDR_REPLICAS_SCHEDULER   replicas of xdr-scheduler                   [2]
  XDR_REPLICAS_NATS        replicas of the NATS StatefulSet            [3]
  XDR_NATS_IN_CLUSTER      "false" when NATS is managed elsewhere      [true]
  XDR_RDS_TIMEOUT          seconds to wait for RDS                     [1200]
  XDR_POLL_INTERVAL        seconds between RDS status checks           [15]
  XDR_ROLLOUT_TIMEOUT      kubectl rollout status timeout              [300s]
USAGE
}

parse_common_args "$@"
for role in "${XDR_ROLES[@]}"; do
  require_replica_count "XDR_REPLICAS_${role^^}" "$(replicas_for "$role")"
done
require_replica_count XDR_REPLICAS_NATS "$XDR_REPLICAS_NATS"
require_rds_instance
require_aws
require_kubectl
[ "$DRY_RUN" = true ] && log "dry run: nothing will be changed"

# 1. The database first: every role needs it to become ready.
status=$(rds_status) || die "cannot describe RDS instance $XDR_RDS_INSTANCE"
start_rds() {
  mutate aws rds start-db-instance --region "$XDR_AWS_REGION" \
    --db-instance-identifier "$XDR_RDS_INSTANCE" \
    --query 'DBInstance.DBInstanceStatus' --output text >/dev/null
}
case "$status" in
  available)
    log "RDS $XDR_RDS_INSTANCE is already available" ;;
  stopped)
    log "RDS $XDR_RDS_INSTANCE is stopped: starting it (this takes several minutes)"
    start_rds
    rds_wait_for available ;;
  stopping)
    log "RDS $XDR_RDS_INSTANCE is still stopping: waiting for it to stop before starting it"
    rds_wait_for stopped
    start_rds
    rds_wait_for available ;;
  *)
    log "RDS $XDR_RDS_INSTANCE is '$status': waiting for it to be available"
    rds_wait_for available ;;
esac

# 2. NATS before the roles that connect to it.
if [ "$XDR_NATS_IN_CLUSTER" = true ]; then
  mutate kube scale statefulset/nats --replicas="$XDR_REPLICAS_NATS" >&2
  wait_rollout statefulset/nats
fi

# 3. Every role back to its replica count (their HPAs resume from there).
for role in "${XDR_ROLES[@]}"; do
  mutate kube scale "$(workload_for "$role")" --replicas="$(replicas_for "$role")" >&2
done
for role in "${XDR_ROLES[@]}"; do
  wait_rollout "$(workload_for "$role")"
done

# 4. Is it serving? The Service has ready endpoints only when pods pass /readyz; then ask
#    one pod directly. (An in-cluster request to the Service itself is refused by design:
#    the NetworkPolicy admits only the ALB to the api pods.)
if [ "$XDR_REPLICAS_API" -gt 0 ]; then
  if [ "$DRY_RUN" = true ]; then
    plan 'would check that service xdr-api has ready endpoints and that /readyz answers'
  else
    endpoints=$(inspect kube get endpointslices --selector=kubernetes.io/service-name=xdr-api \
      -o 'jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}') ||
      die "cannot read the endpoint slices of service xdr-api"
    [ -n "$endpoints" ] || die "service xdr-api has no ready endpoints: /readyz fails. Check: kubectl -n $XDR_NAMESPACE logs deploy/xdr-api"
    readyz=$(inspect kube exec deploy/xdr-api -c api -- curl -fsS --max-time 5 http://127.0.0.1:8000/readyz) ||
      die "/readyz of xdr-api failed (see above). Check: kubectl -n $XDR_NAMESPACE logs deploy/xdr-api"
    log "service xdr-api is ready (endpoints: $endpoints; /readyz: $readyz)"
  fi
fi

# 5. How to reach it.
host=$(inspect kube get ingress mini-xdr -o 'jsonpath={.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
ctx=""
[ -n "$XDR_KUBE_CONTEXT" ] && ctx=" --context $XDR_KUBE_CONTEXT"
local_url="http://127.0.0.1:8000"
if [ -n "$host" ]; then
  base="https://$host"
  alb="$base"
else
  base="$local_url"
  alb="no ALB hostname yet (kubectl$ctx -n $XDR_NAMESPACE get ingress mini-xdr)"
fi
if [ "$DRY_RUN" = true ]; then state="NOT started (dry run)"; else state="up"; fi
cat <<INFO

Mini-XDR is $state.
  API via the ALB:   $alb
  Port-forward:      kubectl$ctx -n $XDR_NAMESPACE port-forward svc/xdr-api 8000:80   then $local_url
  GraphQL:           $base/graphql
  Get a token:       curl -s -X POST $base/api/auth/login \\
                       -H 'content-type: application/json' -d '{"email":"YOU@EXAMPLE.COM","password":"…"}'
  Stop at night:     deploy/aws/stop.sh
INFO
