//! Kubernetes manifests (`deploy/k8s`), the Dockerfile and the Secret template agree with
//! each other and with the binary's contract (roles, env vars, port, probes), and keep the
//! security settings. Files are parsed directly with serde_yaml (multi-document); when a
//! `kubectl` with kustomize is installed, each overlay's rendered output is checked too.

use super::repo_path;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROLES: [&str; 6] = ["api", "ingestor", "projector", "relay", "detector", "scheduler"];
/// Environment variables the binary reads (ARCHITECTURE §4, `src/config.rs`).
/// (The database URLs are per role: `mini-xdr-db`, checked on their own.)
const BINARY_ENV: [&str; 4] = ["NATS_URL", "XDR_BIND", "JWT_SECRET_KEY", "ENCRYPTION_KEY"];
/// Keys that must never sit in the ConfigMap.
const SECRET_KEYS: [&str; 2] = ["JWT_SECRET_KEY", "ENCRYPTION_KEY"];
/// The Secret of the per-role database logins, read key by key (never through envFrom).
const DB_SECRET: &str = "mini-xdr-db";
/// The database URL variables: the workers', the API's, the owner's (`src/config.rs`).
const DB_VARS: [&str; 3] = ["DATABASE_URL", "XDR_API_DATABASE_URL", "XDR_MIGRATE_DATABASE_URL"];
/// The Secret of the per-role NATS passwords, read key by key (never through envFrom).
const NATS_SECRET: &str = "mini-xdr-nats";
/// The roles that speak NATS, with the user they connect as (deploy/nats/accounts.conf).
const NATS_ROLES: [&str; 5] = ["api", "ingestor", "relay", "detector", "scheduler"];
const IMAGE: &str = "mini-xdr";
const CONFIG_MAP: &str = "mini-xdr-config";
const SECRET: &str = "mini-xdr-secrets";
const RESTRICTED_PLACEHOLDER: &str = "203.0.113.0/24";
const EVERYONE: &str = "0.0.0.0/0";

struct Doc {
    file: PathBuf,
    value: Value,
}

fn parse_docs(text: &str, origin: &Path) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", origin.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every YAML document under `dir`, recursively.
fn load(dir: &Path) -> Vec<Doc> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(load(&path));
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            let text = std::fs::read_to_string(&path).unwrap();
            out.extend(parse_docs(&text, &path).into_iter().map(|value| Doc { file: path.clone(), value }));
        }
    }
    out
}

fn k8s_dir(sub: &str) -> PathBuf {
    repo_path("deploy/k8s").join(sub)
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn values(docs: &[Doc]) -> Vec<Value> {
    docs.iter().map(|d| d.value.clone()).collect()
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_sequence().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn port_of(bind: &str) -> u16 {
    bind.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {bind:?}"))
}

/// What the Dockerfile promises.
struct Dockerfile {
    text: String,
    expose: Vec<u16>,
    bind_port: u16,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(repo_path("deploy/Dockerfile")).unwrap();
    let expose = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.trim_end_matches("/tcp").parse::<u16>().unwrap()))
        .collect();
    let bind = text.split("XDR_BIND=").nth(1).expect("Dockerfile sets ENV XDR_BIND");
    let bind = bind.split(|c: char| c.is_whitespace() || c == '\\').next().unwrap();
    Dockerfile { bind_port: port_of(bind), expose, text }
}

/// A container's plain `env` value (not one from a Secret).
fn env_value(c: &Value, var: &str) -> Option<String> {
    c["env"].as_sequence()?.iter().find(|e| e["name"].as_str() == Some(var))?["value"].as_str().map(str::to_owned)
}

/// The container port a probe or Service refers to, by number or by name.
fn resolve_port(port: &Value, container: &Value) -> Option<u64> {
    if let Some(n) = port.as_u64() {
        return Some(n);
    }
    let wanted = port.as_str()?;
    container["ports"].as_sequence()?.iter().find(|p| p["name"].as_str() == Some(wanted))?["containerPort"].as_u64()
}

fn image_ok(image: &str) -> bool {
    // `registry/path/mini-xdr:tag` or `mini-xdr@sha256:…`: the last path component, untagged.
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@']).next() == Some(IMAGE)
}

/// Security settings every container must have; `pod` is the pod spec.
fn check_container_security(c: &Value, pod: &Value, what: &str, failures: &mut Vec<String>) {
    let sc = &c["securityContext"];
    let non_root = sc["runAsNonRoot"].as_bool().or(pod["securityContext"]["runAsNonRoot"].as_bool());
    if non_root != Some(true) {
        failures.push(format!("{what}: runAsNonRoot is not true"));
    }
    if sc["readOnlyRootFilesystem"].as_bool() != Some(true) {
        failures.push(format!("{what}: readOnlyRootFilesystem is not true"));
    }
    if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
        failures.push(format!("{what}: allowPrivilegeEscalation is not false"));
    }
    if !str_list(&sc["capabilities"]["drop"]).contains(&"ALL") {
        failures.push(format!("{what}: capabilities do not drop ALL"));
    }
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            if c["resources"][kind][res].is_null() {
                failures.push(format!("{what}: no resources.{kind}.{res}"));
            }
        }
    }
}

/// ConfigMap first, Secret last (its keys win: NATS_URL with credentials).
fn check_env_from(c: &Value, what: &str, failures: &mut Vec<String>) {
    let refs: Vec<(String, String)> = c["envFrom"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|e| {
                    if let Some(n) = e["configMapRef"]["name"].as_str() {
                        ("configMap".to_string(), n.to_string())
                    } else {
                        ("secret".to_string(), e["secretRef"]["name"].as_str().unwrap_or("").to_string())
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let expected = vec![("configMap".to_string(), CONFIG_MAP.to_string()), ("secret".to_string(), SECRET.to_string())];
    if refs != expected {
        failures.push(format!("{what}: envFrom should be [ConfigMap {CONFIG_MAP}, Secret {SECRET}], is {refs:?}"));
    }
}

/// The workloads running a role: Deployments, and the detector's StatefulSet (one pod per
/// partition). NATS's StatefulSet is not a role.
fn role_workloads(docs: &[Value]) -> Vec<&Value> {
    of_kind(docs, "Deployment")
        .into_iter()
        .chain(
            of_kind(docs, "StatefulSet")
                .into_iter()
                .filter(|s| s["metadata"]["labels"]["app.kubernetes.io/name"].as_str() == Some("mini-xdr")),
        )
        .collect()
}

/// The role workloads and the migration Job, in raw or rendered manifests.
fn check_workloads(docs: &[Value], port: u16, origin: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut roles_seen = BTreeSet::new();
    for d in role_workloads(docs) {
        let pod = &d["spec"]["template"]["spec"];
        let role = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap_or("?");
        let containers = pod["containers"].as_sequence().cloned().unwrap_or_default();
        if containers.is_empty() {
            failures.push(format!("{origin}: {} {} has no containers", kind(d), name(d)));
        }
        for c in &containers {
            let what = format!("{origin}: {} {} container {}", kind(d), name(d), c["name"].as_str().unwrap_or("?"));
            // The API moves /readyz (and /metrics) to their own listener, off the public one.
            let probe_port = env_value(c, "XDR_PROBE_BIND").map(|b| port_of(&b)).unwrap_or(port);
            for (probe, path, expected) in
                [("readinessProbe", "/readyz", probe_port), ("livenessProbe", "/healthz", port)]
            {
                let get = &c[probe]["httpGet"];
                if get["path"].as_str() != Some(path) {
                    failures.push(format!("{what}: {probe} should GET {path}, is {:?}", get["path"]));
                }
                if resolve_port(&get["port"], c) != Some(u64::from(expected)) {
                    failures.push(format!("{what}: {probe} port {:?} is not {expected}", get["port"]));
                }
            }
            let ports: Vec<u64> = c["ports"]
                .as_sequence()
                .map(|p| p.iter().filter_map(|p| p["containerPort"].as_u64()).collect())
                .unwrap_or_default();
            let expected: Vec<u64> =
                if probe_port == port { vec![port.into()] } else { vec![port.into(), probe_port.into()] };
            if ports != expected {
                failures.push(format!(
                    "{what}: containerPort {ports:?}, expected {expected:?} (Dockerfile EXPOSE, XDR_BIND, XDR_PROBE_BIND)"
                ));
            }
            check_container_security(c, pod, &what, &mut failures);
            check_env_from(c, &what, &mut failures);
            let image = c["image"].as_str().unwrap_or("");
            if !image_ok(image) {
                failures.push(format!("{what}: image {image:?} is not the {IMAGE} image"));
            }
            if str_list(&c["args"]) != [role] {
                failures.push(format!("{what}: args {:?} should be [{role}]", c["args"]));
            }
        }
        roles_seen.insert(role.to_string());
    }
    let expected: BTreeSet<String> = ROLES.iter().map(|r| r.to_string()).collect();
    if roles_seen != expected {
        failures.push(format!("{origin}: workloads for roles {roles_seen:?}, expected {expected:?}"));
    }

    let jobs = of_kind(docs, "Job");
    let migrate: Vec<_> = jobs
        .iter()
        .flat_map(|j| {
            j["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (*j, c))
        })
        .filter(|(_, c)| str_list(&c["args"]) == ["migrate"])
        .collect();
    if migrate.len() != 1 {
        failures.push(format!(
            "{origin}: expected one migration Job container with args [migrate], found {}",
            migrate.len()
        ));
    }
    for (job, c) in migrate {
        let what = format!("{origin}: Job {}", name(job));
        check_container_security(&c, &job["spec"]["template"]["spec"], &what, &mut failures);
        check_env_from(&c, &what, &mut failures);
        if !image_ok(c["image"].as_str().unwrap_or("")) {
            failures.push(format!("{what}: image {:?} is not the {IMAGE} image", c["image"]));
        }
    }
    failures
}

#[track_caller]
fn assert_none(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} problem(s):\n  {}", failures.len(), failures.join("\n  "));
}

fn config_map(docs: &[Value]) -> &Value {
    of_kind(docs, "ConfigMap").into_iter().find(|c| name(c) == CONFIG_MAP).expect("ConfigMap mini-xdr-config")
}

fn secret_template() -> Value {
    let path = k8s_dir("base/secret.template.yaml");
    let docs = parse_docs(&std::fs::read_to_string(&path).unwrap(), &path);
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

fn nats_secret_template() -> Value {
    let path = k8s_dir("base/nats-secret.template.yaml");
    let docs = parse_docs(&std::fs::read_to_string(&path).unwrap(), &path);
    assert_eq!(docs.len(), 1);
    assert_eq!((kind(&docs[0]), name(&docs[0])), ("Secret", NATS_SECRET));
    docs[0].clone()
}

fn db_secret_template() -> Value {
    let path = k8s_dir("base/db-secret.template.yaml");
    let docs = parse_docs(&std::fs::read_to_string(&path).unwrap(), &path);
    assert_eq!(docs.len(), 1);
    assert_eq!((kind(&docs[0]), name(&docs[0])), ("Secret", DB_SECRET));
    docs[0].clone()
}

/// The names of a container's `env` entries that come from `secret`, in order.
fn env_from_secret<'a>(c: &'a Value, secret: &str) -> Vec<&'a str> {
    c["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str() == Some(secret))
        .filter_map(|e| e["name"].as_str())
        .collect()
}

fn keys(map: &Value) -> BTreeSet<String> {
    map.as_mapping().map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn every_deployment_has_probes_limits_and_a_locked_down_container_and_runs_its_role() {
    let docs = values(&load(&k8s_dir("base")));
    assert_none(check_workloads(&docs, dockerfile().expose[0], "base"));
}

#[test]
fn ports_agree_between_dockerfile_xdr_bind_containers_services_and_ingress() {
    let df = dockerfile();
    assert_eq!(df.expose, [8000], "one EXPOSEd port");
    assert_eq!(df.bind_port, df.expose[0], "Dockerfile XDR_BIND port");
    let docs = values(&load(&k8s_dir("")));
    let bind = config_map(&docs)["data"]["XDR_BIND"].as_str().expect("XDR_BIND in the ConfigMap");
    assert!(bind.starts_with("0.0.0.0:"), "pods must listen on every interface: {bind}");
    assert_eq!(port_of(bind), df.expose[0], "ConfigMap XDR_BIND port");
    assert_none(check_workloads(
        &docs.iter().filter(|d| kind(d) != "Ingress").cloned().collect::<Vec<_>>(),
        df.expose[0],
        "all",
    ));

    // Every role Service selects its workload's pods and targets the HTTP port.
    let deployments = role_workloads(&docs);
    for role in ROLES {
        let svc = of_kind(&docs, "Service")
            .into_iter()
            .find(|s| name(s) == format!("xdr-{role}"))
            .unwrap_or_else(|| panic!("Service xdr-{role}"));
        let dep = deployments.iter().find(|d| name(d) == format!("xdr-{role}")).unwrap();
        let container = &dep["spec"]["template"]["spec"]["containers"][0];
        for p in svc["spec"]["ports"].as_sequence().unwrap() {
            assert_eq!(
                resolve_port(&p["targetPort"], container),
                Some(u64::from(df.expose[0])),
                "Service xdr-{role} targetPort"
            );
        }
        let labels = &dep["spec"]["template"]["metadata"]["labels"];
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(&labels[k.as_str().unwrap()], v, "Service xdr-{role} selects its pods");
        }
    }
    // The ALB health check and the image's HEALTHCHECK use the liveness endpoint.
    assert!(df.text.contains("HEALTHCHECK") && df.text.contains("/healthz"), "Dockerfile HEALTHCHECK on /healthz");
}

#[test]
fn image_name_and_entrypoint_agree_between_dockerfile_and_manifests() {
    let df = dockerfile();
    assert!(df.text.contains("org.opencontainers.image.title=\"mini-xdr\""), "image title");
    assert!(df.text.contains("ENTRYPOINT [\"mini-xdr\"]"), "the binary is the entrypoint, roles are its argument");
    assert!(df.text.contains("CMD [\"serve\"]"), "default role serve");
    assert!(df.text.contains("FROM rust:1-bookworm AS build"), "build stage");
    let user = df.text.lines().filter_map(|l| l.strip_prefix("USER ")).next_back().expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as non-root: USER {user}");
    // The uid must satisfy runAsNonRoot with a numeric USER (the kubelet cannot check names).
    assert!(user.split(':').next().unwrap().parse::<u32>().is_ok(), "numeric USER: {user}");

    for overlay in ["restricted", "public"] {
        let k = &parse_docs(
            &std::fs::read_to_string(k8s_dir(&format!("overlays/{overlay}/kustomization.yaml"))).unwrap(),
            Path::new(overlay),
        )[0];
        let images = k["images"].as_sequence().expect("overlay sets the image");
        assert!(
            images.iter().any(|i| i["name"].as_str() == Some(IMAGE)
                && i["newName"].as_str().is_some_and(|n| n.ends_with(&format!("/{IMAGE}")))),
            "{overlay}: images entry for {IMAGE}"
        );
        assert!(
            str_list(&k["resources"]).contains(&"../../base")
                && str_list(&k["resources"]).contains(&"ingress-alb.yaml"),
            "{overlay} resources"
        );
    }
}

#[test]
fn every_env_var_the_binary_reads_comes_from_the_config_map_or_the_secret_template() {
    let docs = values(&load(&k8s_dir("base")));
    let config = keys(&config_map(&docs)["data"]);
    let secret = secret_template();
    assert_eq!((kind(&secret), name(&secret)), ("Secret", SECRET));
    let secret_keys = keys(&secret["stringData"]);
    for var in BINARY_ENV {
        assert!(
            config.contains(var) || secret_keys.contains(var),
            "{var} is provided by neither the ConfigMap nor the Secret template"
        );
    }
    for var in SECRET_KEYS {
        assert!(!config.contains(var), "{var} is a secret and must not be in the ConfigMap");
        let placeholder = secret["stringData"][var].as_str().unwrap_or_else(|| panic!("{var} in the Secret template"));
        assert!(placeholder.contains("REPLACE_ME"), "{var} in the template must be a placeholder, is {placeholder:?}");
    }
    assert!(config.contains("RUST_LOG"));
    assert!(!secret_keys.iter().any(|k| k.starts_with("NATS")), "NATS credentials left in {SECRET}: {secret_keys:?}");
    // Every key read from a Secret (NATS's and the roles' passwords) exists in its template.
    let nats_keys = keys(&nats_secret_template()["stringData"]);
    let db_keys = keys(&db_secret_template()["stringData"]);
    let workloads = of_kind(&docs, "StatefulSet").into_iter().chain(of_kind(&docs, "Deployment"));
    for workload in workloads.chain(of_kind(&docs, "Job")) {
        for c in workload["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
            for e in c["env"].as_sequence().into_iter().flatten() {
                let r = &e["valueFrom"]["secretKeyRef"];
                if let Some(key) = r["key"].as_str() {
                    let template = match r["name"].as_str() {
                        Some(NATS_SECRET) => &nats_keys,
                        Some(DB_SECRET) => &db_keys,
                        other => panic!("{key} of {} comes from Secret {other:?}", name(workload)),
                    };
                    assert!(template.contains(key), "{key} used by {} is not in the Secret template", name(workload));
                }
            }
        }
    }
    // The template is never applied by kustomize, and no other Secret is committed.
    let kustomization =
        &parse_docs(&std::fs::read_to_string(k8s_dir("base/kustomization.yaml")).unwrap(), Path::new("base"))[0];
    let resources = str_list(&kustomization["resources"]);
    assert!(!resources.iter().any(|r| r.contains("secret")), "{resources:?}");
    let committed: Vec<_> = load(&k8s_dir(""))
        .into_iter()
        .filter(|d| kind(&d.value) == "Secret" && !d.file.to_string_lossy().ends_with("secret.template.yaml"))
        .map(|d| d.file)
        .collect();
    assert!(committed.is_empty(), "Secrets committed: {committed:?}");
}

#[test]
fn each_role_reads_only_its_own_database_login_and_the_owner_only_the_migration_job() {
    let docs = values(&load(&k8s_dir("base")));
    let db = db_secret_template();
    let mut users = BTreeSet::new();
    for var in DB_VARS {
        let url = db["stringData"][var].as_str().unwrap_or_else(|| panic!("{var} in {DB_SECRET}'s template"));
        assert!(url.contains("REPLACE_ME") && url.starts_with("postgres://"), "{var}: {url:?}");
        users.insert(url.trim_start_matches("postgres://").split([':', '@']).next().unwrap().to_owned());
        assert!(!keys(&config_map(&docs)["data"]).contains(var), "{var} in the ConfigMap");
        assert!(!keys(&secret_template()["stringData"]).contains(var), "{var} in {SECRET}, which every pod reads");
    }
    assert_eq!(users.len(), 3, "three different logins: {users:?}");
    for workload in role_workloads(&docs) {
        let role = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap();
        let expected = if role == "api" { "XDR_API_DATABASE_URL" } else { "DATABASE_URL" };
        for c in workload["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
            assert_eq!(env_from_secret(c, DB_SECRET), [expected], "{role}");
        }
    }
    let jobs = of_kind(&docs, "Job");
    assert_eq!(jobs.len(), 1);
    for c in jobs[0]["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
        assert_eq!(env_from_secret(c, DB_SECRET), ["XDR_MIGRATE_DATABASE_URL"]);
    }
}

#[test]
fn base_kustomization_lists_every_manifest_and_only_existing_ones() {
    let base = k8s_dir("base");
    let k = &parse_docs(&std::fs::read_to_string(base.join("kustomization.yaml")).unwrap(), &base)[0];
    assert_eq!(k["namespace"].as_str(), Some("mini-xdr"));
    let listed: BTreeSet<&str> = str_list(&k["resources"]).into_iter().collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml" && !f.ends_with("secret.template.yaml"))
        .collect();
    assert_eq!(listed, on_disk.iter().map(String::as_str).collect::<BTreeSet<_>>());
    let docs = values(&load(&base));
    let ns = of_kind(&docs, "Namespace");
    assert_eq!(ns.len(), 1);
    assert_eq!(name(ns[0]), "mini-xdr");
}

#[test]
fn stateless_roles_autoscale_and_every_workload_has_a_disruption_budget() {
    let docs = values(&load(&k8s_dir("base")));
    let mut scaled: Vec<&str> = of_kind(&docs, "HorizontalPodAutoscaler")
        .into_iter()
        .map(|h| {
            let target = &h["spec"]["scaleTargetRef"];
            assert_eq!(target["kind"].as_str(), Some("Deployment"));
            let min = h["spec"]["minReplicas"].as_u64().unwrap();
            assert!(min >= 1 && min <= h["spec"]["maxReplicas"].as_u64().unwrap(), "{}", name(h));
            let dep = target["name"].as_str().unwrap();
            let target_dep = of_kind(&docs, "Deployment").into_iter().find(|d| name(d) == dep);
            let target_dep = target_dep.unwrap_or_else(|| panic!("HPA target {dep} exists"));
            // Otherwise every `kubectl apply` resets what the HPA (or start.sh) scaled to.
            assert!(target_dep["spec"]["replicas"].is_null(), "{dep} is autoscaled and must not set spec.replicas");
            dep
        })
        .collect();
    scaled.sort();
    assert_eq!(scaled, ["xdr-api", "xdr-ingestor"]);

    // The detector runs one pod per partition: a StatefulSet whose replica count is its
    // partition count, each pod taking its partition from its name (`xdr-detector-<i>`).
    let detector = of_kind(&docs, "StatefulSet").into_iter().find(|s| name(s) == "xdr-detector").expect("detector");
    let env = detector["spec"]["template"]["spec"]["containers"][0]["env"].as_sequence().expect("detector env");
    let var = |n: &str| env.iter().find(|e| e["name"].as_str() == Some(n)).unwrap_or_else(|| panic!("{n}"));
    assert_eq!(var("XDR_DETECTOR_PARTITION")["valueFrom"]["fieldRef"]["fieldPath"].as_str(), Some("metadata.name"));
    let partitions: u64 = var("XDR_DETECTOR_PARTITIONS")["value"].as_str().unwrap().parse().unwrap();
    assert_eq!(detector["spec"]["replicas"].as_u64(), Some(partitions), "one detector pod per partition");

    let pdbs = of_kind(&docs, "PodDisruptionBudget");
    for w in of_kind(&docs, "Deployment").into_iter().chain(of_kind(&docs, "StatefulSet")) {
        let labels = &w["spec"]["template"]["metadata"]["labels"];
        let covered = pdbs.iter().any(|p| {
            p["spec"]["selector"]["matchLabels"]
                .as_mapping()
                .is_some_and(|m| m.iter().all(|(k, v)| &labels[k.as_str().unwrap()] == v))
        });
        assert!(covered, "{} {} has no PodDisruptionBudget", kind(w), name(w));
    }
}

#[test]
fn only_the_ingress_reaches_the_api_and_everything_else_is_denied_by_default() {
    let docs = values(&load(&k8s_dir("base")));
    let policies = of_kind(&docs, "NetworkPolicy");
    let default_deny = policies.iter().any(|p| {
        p["spec"]["podSelector"].as_mapping().is_some_and(|m| m.is_empty())
            && str_list(&p["spec"]["policyTypes"]).contains(&"Ingress")
            && p["spec"]["ingress"].is_null()
    });
    assert!(default_deny, "a default-deny ingress policy");

    let api_labels = &of_kind(&docs, "Deployment").into_iter().find(|d| name(d) == "xdr-api").unwrap()["spec"]
        ["template"]["metadata"]["labels"];
    let selects_api = |p: &&&Value| {
        p["spec"]["podSelector"]["matchLabels"]
            .as_mapping()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &api_labels[k.as_str().unwrap()] == v))
    };
    let api_policies: Vec<_> = policies.iter().filter(selects_api).collect();
    assert_eq!(api_policies.len(), 1, "one policy admits traffic to api");
    let rules = api_policies[0]["spec"]["ingress"].as_sequence().unwrap();
    for rule in rules {
        for peer in rule["from"].as_sequence().expect("explicit sources") {
            assert!(
                peer["ipBlock"]["cidr"].is_string()
                    && peer["podSelector"].is_null()
                    && peer["namespaceSelector"].is_null(),
                "api admits only the ALB subnets, got {peer:?}"
            );
        }
        let ports: Vec<_> = rule["ports"].as_sequence().unwrap().iter().map(|p| p["port"].as_u64()).collect();
        assert_eq!(ports, [Some(u64::from(dockerfile().expose[0]))]);
    }
    // The other roles accept nothing but kubelet probes: no policy opens them.
    for role in ["ingestor", "projector", "relay", "detector", "scheduler"] {
        let opened = policies
            .iter()
            .any(|p| p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str() == Some(role));
        assert!(!opened, "{role} is opened by a NetworkPolicy");
    }
}

#[test]
fn nats_runs_as_a_three_node_jetstream_cluster_routed_through_a_headless_service() {
    let docs = values(&load(&k8s_dir("base")));
    let sts = of_kind(&docs, "StatefulSet").into_iter().find(|s| name(s) == "nats").expect("StatefulSet nats");
    assert_eq!(sts["spec"]["replicas"].as_u64(), Some(3));
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"].as_str(), Some("nats:2.10-alpine"));
    let mut failures = Vec::new();
    check_container_security(c, pod, "StatefulSet nats", &mut failures);
    assert_none(failures);
    let headless_name = sts["spec"]["serviceName"].as_str().unwrap();
    let headless = of_kind(&docs, "Service").into_iter().find(|s| name(s) == headless_name).expect("headless Service");
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(headless["spec"]["publishNotReadyAddresses"].as_bool(), Some(true), "routes resolve before readiness");
    let conf = of_kind(&docs, "ConfigMap").into_iter().find(|c| name(c) == "nats-config").unwrap()["data"]["nats.conf"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(conf.contains("jetstream {") && conf.contains("cluster {"), "{conf}");
    for i in 0..3 {
        assert!(conf.contains(&format!("nats://nats-{i}.{headless_name}:6222")), "route to nats-{i}: {conf}");
    }
    // Clients reach NATS through the Service named in the ConfigMap's NATS_URL.
    let url = config_map(&docs)["data"]["NATS_URL"].as_str().unwrap().to_string();
    let host = url.trim_start_matches("nats://").split(':').next().unwrap();
    assert!(of_kind(&docs, "Service").iter().any(|s| name(s) == host), "NATS_URL host {host} is a Service");
    // Each server keeps its JetStream store on a volume of its own that outlives the pod.
    let claims = sts["spec"]["volumeClaimTemplates"].as_sequence().expect("volumeClaimTemplates");
    let data = claims.iter().find(|c| name(c) == "data").expect("a claim template named data");
    assert!(data["spec"]["resources"]["requests"]["storage"].as_str().is_some(), "{data:?}");
    let store_dir = conf.split("store_dir:").nth(1).and_then(|r| r.split_whitespace().next()).expect("store_dir");
    let mounted = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|m| m["name"].as_str() == Some("data") && m["mountPath"].as_str() == Some(store_dir));
    assert!(mounted, "the data claim is mounted at the JetStream store_dir {store_dir}");
    // At most one server is taken down voluntarily at a time.
    let pdb = of_kind(&docs, "PodDisruptionBudget").into_iter().find(|p| name(p) == "nats").expect("PDB nats");
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], sts["spec"]["selector"]["matchLabels"],
        "the PDB covers the NATS pods"
    );
}

/// The roles create every stream at R3 on the 3-node cluster: the setting is in the
/// ConfigMap every role reads (checked with the roles' envFrom), it is a replica count JetStream accepts, no larger than the
/// cluster, and large enough that the PDB's one voluntary disruption leaves a quorum.
#[test]
fn streams_are_created_with_as_many_replicas_as_nats_servers() {
    let docs = values(&load(&k8s_dir("base")));
    let servers = of_kind(&docs, "StatefulSet").into_iter().find(|s| name(s) == "nats").unwrap()["spec"]["replicas"]
        .as_u64()
        .unwrap();
    let replicas = config_map(&docs)["data"]["XDR_NATS_STREAM_REPLICAS"]
        .as_str()
        .expect("XDR_NATS_STREAM_REPLICAS in the ConfigMap (a string)");
    let settings = xdr_commands::cluster::JetStreamSettings::from_lookup(|k| {
        (k == "XDR_NATS_STREAM_REPLICAS").then(|| replicas.to_owned())
    })
    .expect("a replica count the roles accept");
    assert_eq!(settings.stream_replicas as u64, servers, "streams at R{servers}");
    let pdb = of_kind(&docs, "PodDisruptionBudget").into_iter().find(|p| name(p) == "nats").unwrap();
    let unavailable = pdb["spec"]["maxUnavailable"].as_u64().unwrap() as usize;
    assert!(settings.stream_replicas - unavailable > settings.stream_replicas / 2, "a quorum survives the PDB");
}

/// The ALB ingress of an overlay, with the checks both overlays share.
fn check_ingress(ing: &Value, overlay: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let a = &ing["metadata"]["annotations"];
    let ann = |k: &str| a[format!("alb.ingress.kubernetes.io/{k}").as_str()].as_str().unwrap_or("").to_string();
    for (k, v) in [
        ("scheme", "internet-facing"),
        ("target-type", "ip"),
        ("healthcheck-path", "/healthz"),
        ("ssl-redirect", "443"),
    ] {
        if ann(k) != v {
            failures.push(format!("{overlay}: annotation {k} should be {v:?}, is {:?}", ann(k)));
        }
    }
    let listen: serde_json::Value = serde_json::from_str(&ann("listen-ports")).unwrap_or_default();
    if listen != serde_json::json!([{"HTTP": 80}, {"HTTPS": 443}]) {
        failures.push(format!("{overlay}: listen-ports should be HTTP 80 + HTTPS 443, is {listen}"));
    }
    if !ann("certificate-arn").starts_with("arn:aws:acm:") {
        failures.push(format!("{overlay}: certificate-arn {:?}", ann("certificate-arn")));
    }
    if ing["spec"]["ingressClassName"].as_str() != Some("alb") {
        failures.push(format!("{overlay}: ingressClassName should be alb"));
    }
    let mut paths = Vec::new();
    for rule in ing["spec"]["rules"].as_sequence().into_iter().flatten() {
        for p in rule["http"]["paths"].as_sequence().into_iter().flatten() {
            let svc = &p["backend"]["service"];
            if svc["name"].as_str() != Some("xdr-api") || svc["port"]["name"].as_str() != Some("http") {
                failures.push(format!("{overlay}: path {:?} should go to xdr-api:http, goes to {svc:?}", p["path"]));
            }
            paths.push(p["path"].as_str().unwrap_or("").to_string());
        }
    }
    if paths != ["/graphql", "/api", "/ingest", "/"] {
        failures.push(format!("{overlay}: paths {paths:?}, expected /graphql, /api, /ingest, then / (dashboard)"));
    }
    failures
}

fn overlay_ingress(overlay: &str) -> Value {
    let docs = values(&load(&k8s_dir(&format!("overlays/{overlay}"))));
    let ingresses = of_kind(&docs, "Ingress");
    assert_eq!(ingresses.len(), 1, "{overlay}: one Ingress");
    ingresses[0].clone()
}

fn inbound_cidrs(ing: &Value) -> Vec<String> {
    ing["metadata"]["annotations"]["alb.ingress.kubernetes.io/inbound-cidrs"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn restricted_overlay_allows_only_the_allowlist_and_public_allows_everyone() {
    let restricted = overlay_ingress("restricted");
    assert_none(check_ingress(&restricted, "restricted"));
    let cidrs = inbound_cidrs(&restricted);
    assert_eq!(cidrs, [RESTRICTED_PLACEHOLDER], "documented placeholder allowlist");
    let text = serde_yaml::to_string(&restricted).unwrap();
    assert!(!text.contains(EVERYONE), "restricted ingress mentions {EVERYONE}:\n{text}");

    let public = overlay_ingress("public");
    assert_none(check_ingress(&public, "public"));
    assert_eq!(inbound_cidrs(&public), [EVERYONE]);

    // The base has no ingress: access is always an explicit choice of overlay.
    assert!(of_kind(&values(&load(&k8s_dir("base"))), "Ingress").is_empty());
}

/// `kubectl kustomize <overlay>`, or None when no kubectl is installed.
fn kustomize(overlay: &Path) -> Option<Vec<Value>> {
    let out = match std::process::Command::new("kubectl").arg("kustomize").arg(overlay).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("kubectl: {e}"),
    };
    assert!(out.status.success(), "kubectl kustomize {}: {}", overlay.display(), String::from_utf8_lossy(&out.stderr));
    Some(parse_docs(&String::from_utf8(out.stdout).unwrap(), overlay))
}

#[test]
fn rendered_overlays_keep_every_rule_when_kustomize_is_available() {
    let port = dockerfile().expose[0];
    for (overlay, cidrs) in [("restricted", RESTRICTED_PLACEHOLDER), ("public", EVERYONE)] {
        let Some(docs) = kustomize(&k8s_dir(&format!("overlays/{overlay}"))) else {
            eprintln!("kubectl not installed: rendered overlays not checked (the raw files are)");
            return;
        };
        assert_none(check_workloads(&docs, port, overlay));
        for d in &docs {
            if !matches!(kind(d), "Namespace") {
                assert_eq!(d["metadata"]["namespace"].as_str(), Some("mini-xdr"), "{overlay}: {} {}", kind(d), name(d));
            }
            assert_ne!(kind(d), "Secret", "{overlay}: a Secret would be applied");
        }
        let ingresses = of_kind(&docs, "Ingress");
        assert_eq!(ingresses.len(), 1);
        assert_none(check_ingress(ingresses[0], overlay));
        assert_eq!(inbound_cidrs(ingresses[0]), [cidrs]);
        if overlay == "restricted" {
            assert!(!serde_yaml::to_string(&docs).unwrap().contains(EVERYONE), "restricted render mentions {EVERYONE}");
        }
        let images: BTreeSet<_> = role_workloads(&docs)
            .iter()
            .map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(images.len(), 1, "{overlay}: every role runs the same image: {images:?}");
    }
}

/// The cluster runs the shipped per-role identities: nats.conf includes accounts.conf, which
/// is `deploy/nats/accounts.conf` verbatim; the servers get every role's password; each role
/// gets its own password only (a compromised pod holds one identity), the projector none.
#[test]
fn nats_identities_are_the_shipped_ones_and_each_role_holds_only_its_own_password() {
    let docs = values(&load(&k8s_dir("base")));
    let config = of_kind(&docs, "ConfigMap").into_iter().find(|c| name(c) == "nats-config").unwrap();
    let conf = config["data"]["nats.conf"].as_str().unwrap();
    assert!(conf.contains("include ./accounts.conf"), "{conf}");
    assert!(!conf.contains("authorization"), "one shared user is gone: {conf}");
    let shipped = std::fs::read_to_string(repo_path("deploy/nats/accounts.conf")).unwrap();
    assert_eq!(
        config["data"]["accounts.conf"].as_str(),
        Some(shipped.as_str()),
        "accounts.conf differs from deploy/nats"
    );
    let var = |role: &str| format!("XDR_NATS_{}_PASSWORD", role.to_uppercase());
    let secret_refs = |c: &Value| -> BTreeSet<String> {
        c["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str() == Some(NATS_SECRET))
            .filter_map(|e| e["valueFrom"]["secretKeyRef"]["key"].as_str().map(str::to_owned))
            .collect()
    };
    let sts = of_kind(&docs, "StatefulSet").into_iter().find(|s| name(s) == "nats").unwrap();
    let server_refs = secret_refs(&sts["spec"]["template"]["spec"]["containers"][0]);
    for role in ["producer", "ingestor", "relay", "detector", "api", "scheduler"] {
        assert!(server_refs.contains(&var(role)), "the NATS servers need {}", var(role));
        assert!(shipped.contains(&format!("${}", var(role))), "accounts.conf reads {}", var(role));
    }
    for workload in role_workloads(&docs) {
        let role = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap();
        let c = &workload["spec"]["template"]["spec"]["containers"][0];
        let expected: BTreeSet<String> =
            if NATS_ROLES.contains(&role) { [var(role)].into_iter().collect() } else { BTreeSet::new() };
        assert_eq!(secret_refs(c), expected, "{role}: NATS passwords in its environment");
    }
}

/// The ALB forwards only the API listener: `/readyz` and `/metrics` are on the `probes` port,
/// which no Service, Ingress path or NetworkPolicy opens. The API takes the client address the
/// ALB appended (one trusted hop) and production serves no introspection and no GraphiQL.
#[test]
fn the_public_ingress_reaches_only_the_api_listener_and_production_turns_introspection_off() {
    let docs = values(&load(&k8s_dir("")));
    let api = of_kind(&docs, "Deployment").into_iter().find(|d| name(d) == "xdr-api").expect("xdr-api");
    let c = &api["spec"]["template"]["spec"]["containers"][0];
    let probe_bind = env_value(c, "XDR_PROBE_BIND").expect("the api sets XDR_PROBE_BIND");
    let probe_port = u64::from(port_of(&probe_bind));
    let http_port = u64::from(dockerfile().expose[0]);
    assert_ne!(probe_port, http_port, "probes on their own port");
    assert_eq!(
        resolve_port(&Value::from("probes"), c),
        Some(probe_port),
        "the probes containerPort is XDR_PROBE_BIND's"
    );
    assert_eq!(env_value(c, "XDR_TRUSTED_PROXY_HOPS").as_deref(), Some("1"), "the ALB is one trusted hop");
    assert_eq!(env_value(c, "XDR_GRAPHQL_INTROSPECTION").as_deref(), Some("false"), "introspection and GraphiQL off");
    assert!(env_value(c, "XDR_TRUST_FORWARDED_FOR").is_none(), "the legacy switch trusts a hop too: use one setting");
    let config = config_map(&docs);
    for var in ["XDR_PROBE_BIND", "XDR_TRUSTED_PROXY_HOPS", "XDR_TRUST_FORWARDED_FOR", "XDR_GRAPHQL_INTROSPECTION"] {
        assert!(config["data"][var].is_null(), "{var} is the api's alone, not in the shared ConfigMap");
    }
    let svc = of_kind(&docs, "Service").into_iter().find(|s| name(s) == "xdr-api").unwrap();
    for p in svc["spec"]["ports"].as_sequence().unwrap() {
        assert_eq!(resolve_port(&p["targetPort"], c), Some(http_port), "Service xdr-api exposes only the API listener");
    }
    for overlay in ["restricted", "public"] {
        let ing = overlay_ingress(overlay);
        for rule in ing["spec"]["rules"].as_sequence().unwrap() {
            for p in rule["http"]["paths"].as_sequence().unwrap() {
                assert_eq!(p["backend"]["service"]["port"]["name"].as_str(), Some("http"), "{overlay}: {p:?}");
            }
        }
    }
    for policy in of_kind(&docs, "NetworkPolicy") {
        for rule in policy["spec"]["ingress"].as_sequence().into_iter().flatten() {
            for p in rule["ports"].as_sequence().into_iter().flatten() {
                assert_ne!(
                    p["port"].as_u64(),
                    Some(probe_port),
                    "NetworkPolicy {} opens the probes port",
                    name(policy)
                );
            }
        }
    }
}
