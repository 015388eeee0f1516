//! `deploy/aws/*.sh` against the fake `aws` and `kubectl` of `tests/fixtures/fakebin`.
//!
//! Each test gets a sandbox whose `bin/` holds the fakes plus symlinks to the few system
//! utilities the scripts need, and nothing else: the real `aws`/`kubectl` of the machine
//! can never be reached, and "tool missing" is a real PATH lookup failure. The fakes append
//! their argv to a log, which the tests compare with the expected call sequence.

use super::repo_path;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use uuid::Uuid;

/// System utilities the scripts and the fakes use (besides bash builtins).
const SYSTEM_TOOLS: &[&str] = &["bash", "env", "dirname", "cat", "sleep", "grep", "mv", "rm", "touch"];

/// Calls that change something (or wait for a change); none may appear in a dry run.
const MUTATING: &[&str] = &[
    "rds start-db-instance",
    "rds stop-db-instance",
    " scale ",
    "create-security-group",
    "authorize-security-group-ingress",
    "revoke-security-group-ingress",
    " exec ",
    " wait ",
];

struct Sandbox {
    root: PathBuf,
    env: BTreeMap<String, String>,
}

impl Sandbox {
    /// A sandbox with both fakes on PATH.
    fn new() -> Sandbox {
        Sandbox::with_fakes(&["aws", "kubectl"])
    }

    fn with_fakes(fakes: &[&str]) -> Sandbox {
        let root = std::env::temp_dir().join(format!("xdr-deploy-{}", Uuid::new_v4().simple()));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        for tool in SYSTEM_TOOLS {
            let found = which(tool).unwrap_or_else(|| panic!("{tool} is needed by the deploy script tests"));
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
        for fake in fakes {
            std::os::unix::fs::symlink(repo_path(&format!("tests/fixtures/fakebin/{fake}")), bin.join(fake)).unwrap();
        }
        std::fs::write(root.join("calls.log"), "").unwrap();
        let env = [
            ("PATH", bin.display().to_string()),
            ("HOME", root.display().to_string()),
            ("FAKE_LOG", root.join("calls.log").display().to_string()),
            ("FAKE_STATE", root.join("state").display().to_string()),
            ("XDR_AWS_REGION", "eu-west-1".into()),
            ("XDR_RDS_INSTANCE", "xdr-db".into()),
            ("XDR_POLL_INTERVAL", "0".into()),
            // A script that waits for a state that never comes fails the test quickly.
            ("XDR_RDS_TIMEOUT", "10".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Sandbox { root, env }
    }

    fn env(&mut self, key: &str, value: &str) -> &mut Sandbox {
        self.env.insert(key.into(), value.into());
        self
    }

    fn set_state(&self, key: &str, value: &str) {
        std::fs::write(self.root.join("state").join(key), value).unwrap();
    }

    fn state(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join("state").join(key)).ok()
    }

    /// Run `deploy/aws/<script>` with only the sandbox's environment and no terminal.
    fn run(&self, script: &str, args: &[&str]) -> Run {
        let output = Command::new(repo_path(&format!("deploy/aws/{script}")))
            .args(args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .output()
            .expect("run script");
        Run(output)
    }

    /// Every call the fakes saw so far, one `aws …`/`kubectl …` line each.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("calls.log")).unwrap().lines().map(str::to_string).collect()
    }

    fn clear_calls(&self) {
        std::fs::write(self.root.join("calls.log"), "").unwrap();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    fn assert_ok(&self) -> &Run {
        assert!(
            self.0.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    fn assert_fails_with(&self, message: &str) -> &Run {
        assert!(!self.0.status.success(), "should fail; stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        assert!(self.stderr().contains(message), "stderr should contain {message:?}:\n{}", self.stderr());
        self
    }
}

const STS: &str = "aws sts get-caller-identity --region eu-west-1 --query Arn --output text";
const DESCRIBE_RDS: &str = "aws rds describe-db-instances --region eu-west-1 --db-instance-identifier xdr-db --query DBInstances[0].DBInstanceStatus --output text";
const START_RDS: &str = "aws rds start-db-instance --region eu-west-1 --db-instance-identifier xdr-db --query DBInstance.DBInstanceStatus --output text";
const STOP_RDS: &str = "aws rds stop-db-instance --region eu-west-1 --db-instance-identifier xdr-db --query DBInstance.DBInstanceStatus --output text";

/// The role pods stop.sh waits for (not the migration Job's, which stays Completed).
const ROLE_PODS: &str =
    "app.kubernetes.io/name=mini-xdr,app.kubernetes.io/component in (api,ingestor,projector,relay,detector,scheduler)";

fn kubectl(ctx: &str, rest: &str) -> String {
    format!("kubectl --context {ctx} --namespace mini-xdr {rest}")
}

fn mutating(calls: &[String]) -> Vec<&String> {
    calls.iter().filter(|c| MUTATING.iter().any(|m| c.contains(m))).collect()
}

#[test]
fn start_starts_a_stopped_database_waits_for_it_then_scales_every_role_and_checks_readyz() {
    let mut sb = Sandbox::new();
    sb.env("XDR_KUBE_CONTEXT", "ops").env("XDR_REPLICAS_API", "5").env("FAKE_RDS_POLLS", "2");
    sb.set_state("rds_status", "stopped");

    let run = sb.run("start.sh", &[]);
    run.assert_ok();

    let k = |rest: &str| kubectl("ops", rest);
    let expected = vec![
        STS.to_string(),
        k("auth can-i update deployments.apps --subresource=scale"),
        DESCRIBE_RDS.into(),
        START_RDS.into(),
        // starting, starting, available: the script polls until available.
        DESCRIBE_RDS.into(),
        DESCRIBE_RDS.into(),
        DESCRIBE_RDS.into(),
        k("scale statefulset/nats --replicas=3"),
        k("rollout status statefulset/nats --timeout=300s"),
        k("scale deployment/xdr-api --replicas=5"),
        k("scale deployment/xdr-ingestor --replicas=2"),
        k("scale deployment/xdr-projector --replicas=1"),
        k("scale deployment/xdr-relay --replicas=1"),
        k("scale statefulset/xdr-detector --replicas=2"),
        k("scale deployment/xdr-scheduler --replicas=2"),
        k("rollout status deployment/xdr-api --timeout=300s"),
        k("rollout status deployment/xdr-ingestor --timeout=300s"),
        k("rollout status deployment/xdr-projector --timeout=300s"),
        k("rollout status deployment/xdr-relay --timeout=300s"),
        k("rollout status statefulset/xdr-detector --timeout=300s"),
        k("rollout status deployment/xdr-scheduler --timeout=300s"),
        k("get endpointslices --selector=kubernetes.io/service-name=xdr-api -o jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}"),
        k("exec deploy/xdr-api -c api -- curl -fsS --max-time 5 http://127.0.0.1:8000/readyz"),
        k("get ingress mini-xdr -o jsonpath={.status.loadBalancer.ingress[0].hostname}"),
    ];
    assert_eq!(sb.calls(), expected);
    assert_eq!(sb.state("rds_status").as_deref(), Some("available"));
    assert_eq!(sb.state("replicas_xdr-api").as_deref(), Some("5"));
    assert_eq!(sb.state("replicas_nats").as_deref(), Some("3"));
    // Progress while waiting, and connection info at the end.
    assert!(run.stderr().contains("RDS xdr-db is 'starting', waiting for 'available'"), "{}", run.stderr());
    let out = run.stdout();
    assert!(out.contains("https://k8s-minixdr-0123456789.eu-west-1.elb.amazonaws.com/graphql"), "{out}");
    assert!(out.contains("kubectl --context ops -n mini-xdr port-forward svc/xdr-api 8000:80"), "{out}");
    assert!(out.contains("/api/auth/login"), "{out}");
}

#[test]
fn start_leaves_an_available_database_alone_and_skips_nats_when_it_is_not_in_cluster() {
    let mut sb = Sandbox::new();
    sb.env("XDR_NATS_IN_CLUSTER", "false").env("XDR_NAMESPACE", "xdr-staging");
    sb.set_state("rds_status", "available");

    sb.run("start.sh", &[]).assert_ok();

    let calls = sb.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("aws rds")).collect::<Vec<_>>(), vec![DESCRIBE_RDS]);
    assert!(!calls.iter().any(|c| c.contains("nats")), "{calls:#?}");
    let scales: Vec<_> = calls.iter().filter(|c| c.contains(" scale ")).collect();
    assert_eq!(scales.len(), 6, "{calls:#?}");
    assert!(
        scales.iter().all(|c| c.starts_with("kubectl --namespace xdr-staging scale deployment/xdr-")
            || c.starts_with("kubectl --namespace xdr-staging scale statefulset/xdr-detector")),
        "{scales:#?}"
    );
}

#[test]
fn start_gives_up_when_the_database_does_not_become_available_in_time() {
    let mut sb = Sandbox::new();
    sb.env("XDR_RDS_TIMEOUT", "0").env("FAKE_RDS_POLLS", "50");
    sb.set_state("rds_status", "stopped");

    sb.run("start.sh", &[])
        .assert_fails_with("timed out after 0s waiting for RDS xdr-db to be available (still 'starting')");
    assert!(mutating(&sb.calls()).iter().all(|c| !c.contains(" scale ")), "no role is started without a database");
}

#[test]
fn start_fails_when_the_api_is_not_ready() {
    let mut sb = Sandbox::new();
    sb.env("FAKE_READYZ_FAIL", "1");
    sb.set_state("rds_status", "available");

    sb.run("start.sh", &[]).assert_fails_with("service xdr-api has no ready endpoints");
}

#[test]
fn stop_scales_roles_then_nats_to_zero_and_stops_the_database_once_when_run_twice() {
    let mut sb = Sandbox::new();
    sb.env("XDR_KUBE_CONTEXT", "ops").env("FAKE_RDS_POLLS", "0");
    sb.set_state("rds_status", "available");
    for w in ["xdr-api", "xdr-ingestor", "xdr-projector", "xdr-relay", "xdr-detector", "xdr-scheduler", "nats"] {
        sb.set_state(&format!("replicas_{w}"), "2");
    }

    let first = sb.run("stop.sh", &[]);
    first.assert_ok();
    let k = |rest: &str| kubectl("ops", rest);
    let expected = vec![
        STS.to_string(),
        k("auth can-i update deployments.apps --subresource=scale"),
        k("scale deployment/xdr-api --replicas=0"),
        k("scale deployment/xdr-ingestor --replicas=0"),
        k("scale statefulset/xdr-detector --replicas=0"),
        k("scale deployment/xdr-scheduler --replicas=0"),
        k("scale deployment/xdr-relay --replicas=0"),
        k("scale deployment/xdr-projector --replicas=0"),
        k(&format!("get pods --selector={ROLE_PODS} -o name")),
        k(&format!("wait --for=delete pod --selector={ROLE_PODS} --timeout=300s")),
        k("scale statefulset/nats --replicas=0"),
        DESCRIBE_RDS.into(),
        STOP_RDS.into(),
    ];
    assert_eq!(sb.calls(), expected);
    for w in ["xdr-api", "xdr-ingestor", "xdr-projector", "xdr-relay", "xdr-detector", "xdr-scheduler", "nats"] {
        assert_eq!(sb.state(&format!("replicas_{w}")).as_deref(), Some("0"), "{w}");
    }

    // Second run: the instance is now stopped; scaling to 0 again is harmless, stopping
    // the database again is not attempted (it would fail with InvalidDBInstanceState).
    sb.clear_calls();
    let second = sb.run("stop.sh", &[]);
    second.assert_ok();
    let calls = sb.calls();
    assert!(!calls.iter().any(|c| c.contains("stop-db-instance")), "{calls:#?}");
    assert_eq!(calls.last().map(String::as_str), Some(DESCRIBE_RDS));
    assert!(second.stderr().contains("RDS xdr-db is already stopped: nothing to do"), "{}", second.stderr());
    assert_eq!(sb.state("rds_status").as_deref(), Some("stopped"));
}

#[test]
fn stop_while_the_database_is_still_stopping_does_not_stop_it_again() {
    let mut sb = Sandbox::new();
    sb.env("FAKE_RDS_POLLS", "5");
    sb.set_state("rds_status", "available");
    sb.run("stop.sh", &[]).assert_ok();
    sb.run("stop.sh", &[]).assert_ok();
    let stops = sb.calls().into_iter().filter(|c| c.contains("stop-db-instance")).count();
    assert_eq!(stops, 1);
}

#[test]
fn dry_run_prints_every_change_and_makes_none() {
    let sb = Sandbox::new();
    sb.set_state("rds_status", "stopped");

    let start = sb.run("start.sh", &["--dry-run"]);
    start.assert_ok();
    let err = start.stderr();
    assert!(
        err.contains(
            "[dry-run] would run: aws rds start-db-instance --region eu-west-1 --db-instance-identifier xdr-db"
        ),
        "{err}"
    );
    assert!(
        err.contains("[dry-run] would run: kubectl --namespace mini-xdr scale deployment/xdr-api --replicas=2"),
        "{err}"
    );
    assert!(
        err.contains("[dry-run] would run: kubectl --namespace mini-xdr scale statefulset/nats --replicas=3"),
        "{err}"
    );
    assert!(start.stdout().contains("NOT started (dry run)"));

    sb.set_state("rds_status", "available");
    let stop = sb.run("stop.sh", &["-n"]);
    stop.assert_ok();
    assert!(stop.stderr().contains("[dry-run] would run: aws rds stop-db-instance"), "{}", stop.stderr());
    assert!(stop
        .stderr()
        .contains("[dry-run] would run: kubectl --namespace mini-xdr scale deployment/xdr-projector --replicas=0"));

    let calls = sb.calls();
    assert!(mutating(&calls).is_empty(), "dry runs made changes: {:#?}", mutating(&calls));
    // Only the documented read-only calls ran.
    assert!(
        calls.iter().all(|c| c.starts_with(STS)
            || c.contains("auth can-i")
            || c.starts_with(DESCRIBE_RDS)
            || c.contains(" get ingress ")),
        "{calls:#?}"
    );
    assert_eq!(sb.state("rds_status").as_deref(), Some("available"), "only the test changed the state");
    assert!(sb.state("replicas_xdr-api").is_none());
}

#[test]
fn a_missing_tool_is_named_and_nothing_runs() {
    let sb = Sandbox::with_fakes(&["kubectl"]);
    sb.set_state("rds_status", "stopped");
    for script in ["start.sh", "stop.sh"] {
        sb.run(script, &[]).assert_fails_with("'aws' was not found on PATH. Install the AWS CLI");
    }
    assert!(sb.calls().is_empty(), "{:#?}", sb.calls());

    let sb = Sandbox::with_fakes(&["aws"]);
    sb.set_state("rds_status", "available");
    for script in ["start.sh", "stop.sh"] {
        sb.run(script, &[]).assert_fails_with("'kubectl' was not found on PATH. Install kubectl");
    }
    assert!(mutating(&sb.calls()).is_empty(), "{:#?}", sb.calls());
}

#[test]
fn unauthenticated_aws_or_kubectl_stops_before_any_change() {
    let mut sb = Sandbox::new();
    sb.env("FAKE_AWS_UNAUTHENTICATED", "1");
    sb.set_state("rds_status", "stopped");
    for script in ["start.sh", "stop.sh"] {
        sb.run(script, &[])
            .assert_fails_with("AWS credentials are missing or expired")
            .assert_fails_with("Unable to locate credentials");
    }
    assert_eq!(sb.calls(), vec![STS, STS]);

    let mut sb = Sandbox::new();
    sb.env("FAKE_KUBE_UNAUTHENTICATED", "1");
    sb.set_state("rds_status", "stopped");
    for script in ["start.sh", "stop.sh"] {
        sb.run(script, &[])
            .assert_fails_with("kubectl cannot use the cluster")
            .assert_fails_with("You must be logged in to the server (Unauthorized)");
    }
    let can_i = "kubectl --namespace mini-xdr auth can-i update deployments.apps --subresource=scale";
    assert_eq!(sb.calls(), vec![STS, can_i, STS, can_i]);
    assert_eq!(sb.state("rds_status").as_deref(), Some("stopped"));
}

#[test]
fn missing_settings_and_unknown_arguments_are_usage_errors() {
    let mut sb = Sandbox::new();
    sb.env("XDR_RDS_INSTANCE", "");
    let run = sb.run("start.sh", &[]);
    run.assert_fails_with("XDR_RDS_INSTANCE is not set");
    assert_eq!(run.0.status.code(), Some(2));

    let sb = Sandbox::new();
    let run = sb.run("stop.sh", &["--force"]);
    run.assert_fails_with("unknown argument '--force'");
    assert_eq!(run.0.status.code(), Some(2));

    let mut sb = Sandbox::new();
    sb.env("XDR_REPLICAS_DETECTOR", "many");
    sb.run("start.sh", &[]).assert_fails_with("XDR_REPLICAS_DETECTOR must be a whole number");
    assert!(sb.calls().is_empty());
}

#[test]
fn help_documents_dry_run_and_every_setting() {
    let sb = Sandbox::with_fakes(&[]);
    for (script, settings) in [
        (
            "start.sh",
            &[
                "XDR_AWS_REGION",
                "XDR_RDS_INSTANCE",
                "XDR_NAMESPACE",
                "XDR_KUBE_CONTEXT",
                "XDR_REPLICAS_API",
                "XDR_REPLICAS_NATS",
            ][..],
        ),
        ("stop.sh", &["XDR_AWS_REGION", "XDR_RDS_INSTANCE", "XDR_NAMESPACE", "XDR_KUBE_CONTEXT"][..]),
        ("alb-security-group.sh", &["XDR_AWS_REGION", "XDR_VPC_ID", "XDR_ALLOWED_CIDRS", "--public", "--yes"][..]),
    ] {
        let run = sb.run(script, &["--help"]);
        run.assert_ok();
        let help = run.stdout();
        assert!(help.contains("--dry-run") && help.contains("Read-only calls"), "{script}: {help}");
        for s in settings {
            assert!(help.contains(s), "{script} --help should mention {s}");
        }
    }
    assert!(sb.calls().is_empty(), "--help needs no tool");
}

const SG: &str = "sg-0fake0000000000001";

fn sg_rules(sb: &Sandbox) -> Vec<String> {
    let mut rules: Vec<_> = sb.state("sg_rules").unwrap_or_default().lines().map(str::to_string).collect();
    rules.sort();
    rules
}

#[test]
fn alb_security_group_is_created_then_kept_equal_to_the_allowlist() {
    let mut sb = Sandbox::new();
    sb.env("XDR_VPC_ID", "vpc-0abc").env("XDR_ALLOWED_CIDRS", "203.0.113.0/24, 198.51.100.7/32");

    let run = sb.run("alb-security-group.sh", &[]);
    run.assert_ok();
    assert!(run.stdout().contains(&format!("alb.ingress.kubernetes.io/security-groups: {SG}")), "{}", run.stdout());
    assert_eq!(sg_rules(&sb), ["443 198.51.100.7/32", "443 203.0.113.0/24", "80 198.51.100.7/32", "80 203.0.113.0/24"]);
    let calls = sb.calls();
    assert!(
        calls[2].starts_with(
            "aws ec2 create-security-group --region eu-west-1 --vpc-id vpc-0abc --group-name mini-xdr-alb"
        ),
        "{calls:#?}"
    );

    // The allowlist changes: only the difference is applied, additions before removals.
    sb.clear_calls();
    sb.env("XDR_ALLOWED_CIDRS", "198.51.100.7/32,192.0.2.0/28");
    sb.run("alb-security-group.sh", &[]).assert_ok();
    assert_eq!(sg_rules(&sb), ["443 192.0.2.0/28", "443 198.51.100.7/32", "80 192.0.2.0/28", "80 198.51.100.7/32"]);
    let changes: Vec<_> = mutating(&sb.calls()).into_iter().cloned().collect();
    assert_eq!(changes.len(), 4, "{changes:#?}");
    assert!(
        changes[0].contains("authorize")
            && changes[0].contains("FromPort=80")
            && changes[0].contains("CidrIp=192.0.2.0/28")
    );
    assert!(changes[1].contains(&format!("revoke-security-group-ingress --region eu-west-1 --group-id {SG} --protocol tcp --port 80 --cidr 203.0.113.0/24")));

    // Running it again with the same list changes nothing.
    sb.clear_calls();
    sb.run("alb-security-group.sh", &[]).assert_ok();
    assert!(mutating(&sb.calls()).is_empty(), "{:#?}", sb.calls());
}

#[test]
fn alb_security_group_public_needs_confirmation_and_the_allowlist_never_accepts_everyone() {
    let mut sb = Sandbox::new();
    sb.env("XDR_VPC_ID", "vpc-0abc").env("XDR_ALLOWED_CIDRS", "203.0.113.0/24");
    sb.run("alb-security-group.sh", &[]).assert_ok();
    sb.clear_calls();

    // No terminal to ask on, no --yes: refused before any change.
    sb.run("alb-security-group.sh", &["--public"])
        .assert_fails_with("needs confirmation, but there is no terminal: re-run with --yes");
    assert!(mutating(&sb.calls()).is_empty());
    // Dry run: shows the switch, changes nothing, needs no confirmation.
    let dry = sb.run("alb-security-group.sh", &["--public", "--dry-run"]);
    dry.assert_ok();
    assert!(dry.stderr().contains("[dry-run] would run: aws ec2 authorize-security-group-ingress"), "{}", dry.stderr());
    assert!(mutating(&sb.calls()).is_empty());
    assert_eq!(sg_rules(&sb), ["443 203.0.113.0/24", "80 203.0.113.0/24"]);

    sb.run("alb-security-group.sh", &["--public", "--yes"]).assert_ok();
    assert_eq!(sg_rules(&sb), ["443 0.0.0.0/0", "80 0.0.0.0/0"]);

    // 0.0.0.0/0 can only come from --public.
    sb.env("XDR_ALLOWED_CIDRS", "0.0.0.0/0");
    sb.run("alb-security-group.sh", &[]).assert_fails_with("0.0.0.0/0 is not an allowlist; use --public");
    sb.env("XDR_ALLOWED_CIDRS", "office");
    sb.run("alb-security-group.sh", &[]).assert_fails_with("'office' in XDR_ALLOWED_CIDRS is not an IPv4 CIDR");
    assert_eq!(sg_rules(&sb), ["443 0.0.0.0/0", "80 0.0.0.0/0"]);
}
