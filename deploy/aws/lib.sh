# shellcheck shell=bash
# Shared helpers of the AWS scripts (sourced, not run): settings from the environment,
# logging, dry-run, tool and credential checks, RDS and kubectl wrappers.
#
# Dry-run contract: every command that CHANGES something goes through `mutate`, which in
# dry-run mode prints it as "[dry-run] would run: …" and does not run it. Read-only calls
# (sts get-caller-identity, describe-*, kubectl get/auth can-i) go through `inspect` and
# DO run in dry-run mode, so the plan printed reflects the real current state; they are
# echoed as "[read] …".

# ---- settings (environment, with defaults) ------------------------------------------
XDR_AWS_REGION="${XDR_AWS_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
XDR_RDS_INSTANCE="${XDR_RDS_INSTANCE:-}"
XDR_NAMESPACE="${XDR_NAMESPACE:-mini-xdr}"
XDR_KUBE_CONTEXT="${XDR_KUBE_CONTEXT:-}"
XDR_REPLICAS_API="${XDR_REPLICAS_API:-2}"
XDR_REPLICAS_INGESTOR="${XDR_REPLICAS_INGESTOR:-2}"
XDR_REPLICAS_PROJECTOR="${XDR_REPLICAS_PROJECTOR:-1}"
XDR_REPLICAS_RELAY="${XDR_REPLICAS_RELAY:-1}"
XDR_REPLICAS_DETECTOR="${XDR_REPLICAS_DETECTOR:-2}"
XDR_REPLICAS_SCHEDULER="${XDR_REPLICAS_SCHEDULER:-2}"
XDR_REPLICAS_NATS="${XDR_REPLICAS_NATS:-3}"
# "false" when NATS is managed outside the cluster: the scripts then leave it alone.
XDR_NATS_IN_CLUSTER="${XDR_NATS_IN_CLUSTER:-true}"
XDR_RDS_TIMEOUT="${XDR_RDS_TIMEOUT:-1200}"
XDR_POLL_INTERVAL="${XDR_POLL_INTERVAL:-15}"
XDR_ROLLOUT_TIMEOUT="${XDR_ROLLOUT_TIMEOUT:-300s}"

# The roles, in start order; each is the Deployment `xdr-<role>` (deploy/k8s/base), except
# the detector, a StatefulSet (one pod per partition; see workload_for).
# shellcheck disable=SC2034 # used by the scripts that source this file
XDR_ROLES=(api ingestor projector relay detector scheduler)

DRY_RUN=false

# ---- logging ---------------------------------------------------------------------
log() { printf '[%s] %s\n' "${XDR_SCRIPT:-mini-xdr}" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "${XDR_SCRIPT:-mini-xdr}" "$*" >&2
  exit 1
}
# Usage and configuration errors exit 2, like most CLIs.
usage_error() {
  printf '[%s] ERROR: %s (see --help)\n' "${XDR_SCRIPT:-mini-xdr}" "$*" >&2
  exit 2
}

# A line of the dry-run plan (stderr, like the log: stdout is kept for results).
# shellcheck disable=SC2059 # the format string is ours
plan() {
  local fmt="$1"
  shift
  printf "[dry-run] $fmt\n" "$@" >&2
}

# Print a command as one shell-quoted line.
show_cmd() {
  local out="" arg
  if [ "${1:-}" = kube ]; then
    # Show the real kubectl command line, with the flags `kube` adds.
    shift
    set -- kubectl ${XDR_KUBE_CONTEXT:+--context "$XDR_KUBE_CONTEXT"} --namespace "$XDR_NAMESPACE" "$@"
  fi
  for arg in "$@"; do
    out+=" $(printf '%q' "$arg")"
  done
  printf '%s' "${out# }"
}

# A command that changes state: printed, and run unless --dry-run.
mutate() {
  if [ "$DRY_RUN" = true ]; then
    plan 'would run: %s' "$(show_cmd "$@")"
    return 0
  fi
  log "+ $(show_cmd "$@")"
  "$@"
}

# A read-only command: runs in every mode (also --dry-run), echoed to stderr.
inspect() {
  log "[read] $(show_cmd "$@")"
  "$@"
}

# ---- tools and credentials ------------------------------------------------------------
require_tool() {
  local tool="$1" hint="$2"
  if ! command -v "$tool" >/dev/null 2>&1; then
    die "'$tool' was not found on PATH. $hint"
  fi
}

require_aws() {
  require_tool aws "Install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)."
  [ -n "$XDR_AWS_REGION" ] || usage_error "XDR_AWS_REGION is not set (or AWS_REGION)"
  local err
  if ! err=$(aws sts get-caller-identity --region "$XDR_AWS_REGION" --query Arn --output text 2>&1 >/dev/null); then
    die "AWS credentials are missing or expired: 'aws sts get-caller-identity' failed: ${err:-no output}. Log in (aws sso login --profile …) or export AWS_PROFILE, then retry."
  fi
}

require_kubectl() {
  require_tool kubectl "Install kubectl (https://kubernetes.io/docs/tasks/tools/) and configure access: aws eks update-kubeconfig --name CLUSTER --region REGION."
  local out rc=0
  # `auth can-i` needs a reachable, authenticated cluster and tells whether we may scale.
  # It prints "no" and exits 1 when merely forbidden.
  out=$(kube auth can-i update deployments.apps --subresource=scale 2>&1) || rc=$?
  if [ "$out" = no ]; then
    die "kubectl is authenticated but may not scale deployments in namespace '$XDR_NAMESPACE' (kubectl auth can-i said: no)."
  fi
  if [ "$rc" != 0 ] || [ "$out" != yes ]; then
    die "kubectl cannot use the cluster (context '${XDR_KUBE_CONTEXT:-current}', namespace '$XDR_NAMESPACE'): ${out:-no output}. Refresh credentials (aws eks update-kubeconfig …) or set XDR_KUBE_CONTEXT."
  fi
}

require_rds_instance() {
  [ -n "$XDR_RDS_INSTANCE" ] || usage_error "XDR_RDS_INSTANCE is not set (the RDS DB instance identifier)"
}

require_replica_count() {
  local name="$1" value="$2"
  [[ "$value" =~ ^[0-9]+$ ]] || usage_error "$name must be a whole number, got '$value'"
}

# ---- kubectl ----------------------------------------------------------------------
# kubectl with the configured context and namespace.
kube() {
  local args=()
  if [ -n "$XDR_KUBE_CONTEXT" ]; then
    args+=(--context "$XDR_KUBE_CONTEXT")
  fi
  kubectl "${args[@]}" --namespace "$XDR_NAMESPACE" "$@"
}

# The workload of a role, as kubectl names it.
workload_for() {
  case "$1" in
    detector) printf 'statefulset/xdr-detector' ;;
    *) printf 'deployment/xdr-%s' "$1" ;;
  esac
}

replicas_for() {
  case "$1" in
    api) printf '%s' "$XDR_REPLICAS_API" ;;
    ingestor) printf '%s' "$XDR_REPLICAS_INGESTOR" ;;
    projector) printf '%s' "$XDR_REPLICAS_PROJECTOR" ;;
    relay) printf '%s' "$XDR_REPLICAS_RELAY" ;;
    detector) printf '%s' "$XDR_REPLICAS_DETECTOR" ;;
    scheduler) printf '%s' "$XDR_REPLICAS_SCHEDULER" ;;
    *) die "unknown role $1" ;;
  esac
}

# ---- RDS --------------------------------------------------------------------------
rds_status() {
  inspect aws rds describe-db-instances --region "$XDR_AWS_REGION" \
    --db-instance-identifier "$XDR_RDS_INSTANCE" \
    --query 'DBInstances[0].DBInstanceStatus' --output text
}

# Wait until the instance reaches $1 ("available" or "stopped"); gives up after
# XDR_RDS_TIMEOUT seconds. In dry-run mode only says it would wait.
rds_wait_for() {
  local want="$1" status start=$SECONDS
  if [ "$DRY_RUN" = true ]; then
    plan 'would wait up to %ss for RDS %s to be %s' "$XDR_RDS_TIMEOUT" "$XDR_RDS_INSTANCE" "$want"
    return 0
  fi
  while true; do
    status=$(rds_status) || die "cannot read the status of RDS instance $XDR_RDS_INSTANCE"
    if [ "$status" = "$want" ]; then
      log "RDS $XDR_RDS_INSTANCE is $want (after $((SECONDS - start))s)"
      return 0
    fi
    case "$status" in
      deleting | failed | storage-full | incompatible-* | inaccessible-encryption-credentials*)
        die "RDS $XDR_RDS_INSTANCE is '$status'; it will not become $want by itself. Check the AWS console." ;;
    esac
    if [ $((SECONDS - start)) -ge "$XDR_RDS_TIMEOUT" ]; then
      die "timed out after ${XDR_RDS_TIMEOUT}s waiting for RDS $XDR_RDS_INSTANCE to be $want (still '$status'). Raise XDR_RDS_TIMEOUT or check the AWS console."
    fi
    log "RDS $XDR_RDS_INSTANCE is '$status', waiting for '$want' ($((SECONDS - start))s of ${XDR_RDS_TIMEOUT}s)"
    sleep "$XDR_POLL_INTERVAL"
  done
}

# Wait for a rollout (read-only); in dry-run mode only says it would.
wait_rollout() {
  if [ "$DRY_RUN" = true ]; then
    plan 'would wait for %s to roll out (timeout %s)' "$1" "$XDR_ROLLOUT_TIMEOUT"
    return 0
  fi
  inspect kube rollout status "$1" --timeout="$XDR_ROLLOUT_TIMEOUT" >&2 ||
    die "$1 did not become ready within $XDR_ROLLOUT_TIMEOUT. Look at: kubectl -n $XDR_NAMESPACE describe $1; kubectl -n $XDR_NAMESPACE logs $1"
}

# Common options of every script; sets DRY_RUN, calls `usage` for --help.
parse_common_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      -n | --dry-run) DRY_RUN=true ;;
      *) usage_error "unknown argument '$1'" ;;
    esac
    shift
  done
}
