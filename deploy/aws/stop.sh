#!/usr/bin/env bash
# Stop Mini-XDR on AWS to save cost: every role and NATS to 0 replicas, RDS stopped.
# Safe to run twice: an RDS instance that is already stopped (or stopping) is left alone.
set -euo pipefail
XDR_SCRIPT=stop
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: deploy/aws/stop.sh [--dry-run] [--help]

Scales every role (api, ingestor, detector, scheduler, relay, then projector, so it finishes
last) to 0,
waits for their pods to exit, scales the in-cluster NATS StatefulSet to 0 (its volumes
are kept), and stops the RDS instance unless it is already stopped or stopping.
AWS starts a stopped RDS instance again after 7 days; run this again then.

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
  XDR_NATS_IN_CLUSTER      "false" when NATS is managed elsewhere      [true]
  XDR_RDS_TIMEOUT          seconds to wait for a busy RDS instance     [1200]
  XDR_POLL_INTERVAL        seconds between RDS status checks           [15]
  XDR_ROLLOUT_TIMEOUT      how long to wait for pods to exit           [300s]
USAGE
}

parse_common_args "$@"
require_rds_instance
require_aws
require_kubectl
[ "$DRY_RUN" = true ] && log "dry run: nothing will be changed"

# 1. The roles, API first (stop taking work), projector last (finish what was committed).
for role in api ingestor detector scheduler relay projector; do
  mutate kube scale "$(workload_for "$role")" --replicas=0 >&2
done
if [ "$DRY_RUN" = true ]; then
  plan 'would wait for the role pods to exit'
else
  # The role pods only: a finished migration Job's pod is never deleted by scaling.
  selector="app.kubernetes.io/name=mini-xdr,app.kubernetes.io/component in (api,ingestor,projector,relay,detector,scheduler)"
  pods=$(inspect kube get pods --selector="$selector" -o name)
  if [ -n "$pods" ]; then
    inspect kube wait --for=delete pod --selector="$selector" --timeout="$XDR_ROLLOUT_TIMEOUT" >&2 ||
      log "warning: some role pods are still terminating; continuing"
  fi
fi

# 2. NATS after its clients. Its PersistentVolumeClaims stay: streams survive the night.
if [ "$XDR_NATS_IN_CLUSTER" = true ]; then
  mutate kube scale statefulset/nats --replicas=0 >&2
fi

# 3. The database last.
status=$(rds_status) || die "cannot describe RDS instance $XDR_RDS_INSTANCE"
stop_rds() {
  mutate aws rds stop-db-instance --region "$XDR_AWS_REGION" \
    --db-instance-identifier "$XDR_RDS_INSTANCE" \
    --query 'DBInstance.DBInstanceStatus' --output text >/dev/null
}
case "$status" in
  stopped)
    log "RDS $XDR_RDS_INSTANCE is already stopped: nothing to do" ;;
  stopping)
    log "RDS $XDR_RDS_INSTANCE is already stopping: nothing to do" ;;
  available)
    stop_rds
    log "RDS $XDR_RDS_INSTANCE is stopping (takes a few minutes; storage and backups are still billed)" ;;
  *)
    log "RDS $XDR_RDS_INSTANCE is '$status': it can only be stopped when available; waiting"
    rds_wait_for available
    stop_rds ;;
esac
log "$([ "$DRY_RUN" = true ] && printf 'dry run finished: nothing was changed' || printf 'stopped. Start again with deploy/aws/start.sh')"
