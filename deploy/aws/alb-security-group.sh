#!/usr/bin/env bash
# Create or update the security group of the Mini-XDR ALB so that only the allowlisted
# networks reach ports 80 and 443; `--public` opens it to 0.0.0.0/0 after confirmation.
set -euo pipefail
XDR_SCRIPT=alb-sg
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

XDR_VPC_ID="${XDR_VPC_ID:-}"
XDR_ALB_SG_NAME="${XDR_ALB_SG_NAME:-mini-xdr-alb}"
XDR_ALLOWED_CIDRS="${XDR_ALLOWED_CIDRS:-}"
PORTS=(80 443)
PUBLIC=false
YES=false

usage() {
  cat <<USAGE
Usage: deploy/aws/alb-security-group.sh [--public [--yes]] [--dry-run] [--help]

Creates the security group XDR_ALB_SG_NAME in XDR_VPC_ID if it does not exist, then makes
its inbound rules on TCP 80 and 443 exactly the allowlist: missing CIDRs are authorized
first, then CIDRs no longer listed are revoked. Prints the group id to put in the
ingress annotation alb.ingress.kubernetes.io/security-groups (docs/OPERATIONS.md).

Options:
  --public        allow 0.0.0.0/0 instead of the allowlist (asks for confirmation).
  -y, --yes       do not ask for confirmation (for --public in scripts).
  -n, --dry-run   print every command that would change something, change nothing.
                  Read-only calls (sts get-caller-identity, describe-security-groups)
                  still run, so the plan matches reality.
  -h, --help      this text.

Environment (defaults in brackets):
  XDR_AWS_REGION      AWS region (or AWS_REGION)                          [required]
  XDR_VPC_ID          VPC of the ALB                                      [required]
  XDR_ALLOWED_CIDRS   allowlist, comma- or space-separated IPv4 CIDRs,
                      e.g. "198.51.100.7/32,203.0.113.0/24"               [required unless --public]
  XDR_ALB_SG_NAME     security group name                                 [mini-xdr-alb]
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -n | --dry-run) DRY_RUN=true ;;
    --public) PUBLIC=true ;;
    -y | --yes) YES=true ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done

[ -n "$XDR_VPC_ID" ] || usage_error "XDR_VPC_ID is not set (the VPC of the ALB)"
desired=()
if [ "$PUBLIC" = true ]; then
  desired=(0.0.0.0/0)
else
  [ -n "$XDR_ALLOWED_CIDRS" ] || usage_error "XDR_ALLOWED_CIDRS is empty: give the allowlist, or --public"
  read -r -a desired <<<"${XDR_ALLOWED_CIDRS//,/ }"
  for cidr in "${desired[@]}"; do
    [[ "$cidr" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] || usage_error "'$cidr' in XDR_ALLOWED_CIDRS is not an IPv4 CIDR like 203.0.113.0/24"
    [ "$cidr" != 0.0.0.0/0 ] || usage_error "0.0.0.0/0 is not an allowlist; use --public to open the ALB to everyone"
  done
fi
require_aws

if [ "$PUBLIC" = true ] && [ "$YES" != true ] && [ "$DRY_RUN" != true ]; then
  [ -t 0 ] || die "--public opens the ALB to the whole internet (0.0.0.0/0) and needs confirmation, but there is no terminal: re-run with --yes"
  printf 'This opens security group %s to the whole internet (0.0.0.0/0) on ports %s.\nType "public" to continue: ' \
    "$XDR_ALB_SG_NAME" "${PORTS[*]}" >&2
  read -r answer || answer=""
  [ "$answer" = public ] || die "not confirmed; nothing was changed"
fi
[ "$DRY_RUN" = true ] && log "dry run: nothing will be changed"

# 1. The group, created when missing.
sg=$(inspect aws ec2 describe-security-groups --region "$XDR_AWS_REGION" \
  --filters "Name=vpc-id,Values=$XDR_VPC_ID" "Name=group-name,Values=$XDR_ALB_SG_NAME" \
  --query 'SecurityGroups[0].GroupId' --output text) || die "cannot list security groups in $XDR_VPC_ID"
created=false
create=(aws ec2 create-security-group --region "$XDR_AWS_REGION" --vpc-id "$XDR_VPC_ID"
  --group-name "$XDR_ALB_SG_NAME" --description "Mini-XDR ALB allowlist (deploy/aws/alb-security-group.sh)"
  --tag-specifications "ResourceType=security-group,Tags=[{Key=Name,Value=$XDR_ALB_SG_NAME},{Key=Application,Value=mini-xdr}]"
  --query GroupId --output text)
if [ -z "$sg" ] || [ "$sg" = None ]; then
  created=true
  if [ "$DRY_RUN" = true ]; then
    mutate "${create[@]}"
    sg="<new-group-id>"
  else
    sg=$(mutate "${create[@]}") || die "cannot create security group $XDR_ALB_SG_NAME"
  fi
  log "created security group $XDR_ALB_SG_NAME: $sg"
else
  log "security group $XDR_ALB_SG_NAME exists: $sg"
fi

# 2. Per port: authorize what is missing, then revoke what is no longer listed.
contains() {
  local needle="$1" item
  shift
  for item in "$@"; do [ "$item" = "$needle" ] && return 0; done
  return 1
}
for port in "${PORTS[@]}"; do
  current=()
  if [ "$created" = false ]; then
    query="SecurityGroups[0].IpPermissions[?IpProtocol=='tcp' && FromPort==\`$port\` && ToPort==\`$port\`].IpRanges[].CidrIp"
    text=$(inspect aws ec2 describe-security-groups --region "$XDR_AWS_REGION" --group-ids "$sg" \
      --query "$query" --output text) || die "cannot read the rules of $sg"
    [ "$text" = None ] && text=""
    read -r -a current <<<"$text"
  fi
  for cidr in "${desired[@]}"; do
    if ! contains "$cidr" "${current[@]}"; then
      mutate aws ec2 authorize-security-group-ingress --region "$XDR_AWS_REGION" --group-id "$sg" \
        --ip-permissions "IpProtocol=tcp,FromPort=$port,ToPort=$port,IpRanges=[{CidrIp=$cidr,Description=mini-xdr-alb}]" >/dev/null
    fi
  done
  for cidr in "${current[@]}"; do
    if ! contains "$cidr" "${desired[@]}"; then
      mutate aws ec2 revoke-security-group-ingress --region "$XDR_AWS_REGION" --group-id "$sg" \
        --protocol tcp --port "$port" --cidr "$cidr" >/dev/null
    fi
  done
done

cat <<INFO

ALB security group: $sg ($XDR_ALB_SG_NAME), ports ${PORTS[*]} open to: ${desired[*]}$([ "$DRY_RUN" = true ] && printf ' (dry run: nothing changed)')
To use it, add to the Ingress (deploy/k8s/overlays/*/ingress-alb.yaml):
  alb.ingress.kubernetes.io/security-groups: $sg
  alb.ingress.kubernetes.io/manage-backend-security-group-rules: "true"
(the controller then ignores alb.ingress.kubernetes.io/inbound-cidrs).
INFO
