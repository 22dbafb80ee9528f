//! Offline checks of the deployment files under `deploy/`: CI has no cluster and no schema
//! download, so this parses every YAML document and checks the fields that decide whether
//! a deployment works: probes on the admin port, grace periods longer than the worker
//! drain, resources, the coordinator StatefulSet's identity and storage, selectors that
//! select something, compose wiring, and TLS, tokens and sealed secrets on by default
//! (every node given its certificate, nothing opting into plaintext).
//!
//! Each check returns the problems it found; the tests assert that the real files have none
//! and, on small broken documents, that each check does find the problem it is for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

/// The worker's `--drain-timeout` default (worker/src/config.rs).
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One YAML document of a file under `deploy/`.
struct Doc {
    /// Path relative to `deploy/`, for messages.
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        str_at(&self.value, "kind").unwrap_or("")
    }
    fn name(&self) -> &str {
        str_at(&self.value, "metadata.name").unwrap_or("")
    }
    fn namespace(&self) -> &str {
        str_at(&self.value, "metadata.namespace").unwrap_or("default")
    }
    fn id(&self) -> String {
        format!("{}: {}/{}", self.file, self.kind(), self.name())
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Every document of a (multi-document) YAML text, merge keys (`<<: *anchor`) applied,
/// empty documents skipped. Documents are split at `---` lines (serde_yaml's multi-document
/// deserializer needs the `serde` traits, which this crate does not depend on); a `---`
/// inside a block scalar is indented, so it never starts a line.
fn parse_docs(file: &str, text: &str) -> Vec<Doc> {
    let mut parts = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            parts.push(line[3..].to_string());
        } else {
            let part = parts.last_mut().expect("one part at least");
            part.push_str(line);
        }
        parts.last_mut().expect("one part at least").push('\n');
    }
    parts
        .iter()
        .enumerate()
        .filter_map(|(i, part)| {
            let mut value: Value = serde_yaml::from_str(part)
                .unwrap_or_else(|e| panic!("{file}: document {}: {e}", i + 1));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{file}: document {}: {e}", i + 1));
            (!value.is_null()).then(|| Doc {
                file: file.to_string(),
                value,
            })
        })
        .collect()
}

/// Every document of every YAML file under `deploy/`.
fn all_docs() -> Vec<Doc> {
    let root = deploy_dir();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no YAML file under {}", root.display());
    files
        .iter()
        .flat_map(|path| {
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            parse_docs(&rel, &text)
        })
        .collect()
}

fn is_compose(doc: &Doc) -> bool {
    doc.file == "compose.yaml"
}

fn is_kustomization(doc: &Doc) -> bool {
    doc.kind() == "Kustomization"
}

/// The Kubernetes objects: every document under `deploy/k8s/` but the kustomization.
fn k8s_docs() -> Vec<Doc> {
    let docs: Vec<Doc> = all_docs()
        .into_iter()
        .filter(|d| d.file.starts_with("k8s/") && !is_kustomization(d))
        .collect();
    assert!(!docs.is_empty(), "no Kubernetes object under deploy/k8s");
    docs
}

fn compose() -> Value {
    let mut docs: Vec<Doc> = all_docs().into_iter().filter(is_compose).collect();
    assert_eq!(docs.len(), 1, "deploy/compose.yaml must be one document");
    docs.remove(0).value
}

// ----- small accessors -------------------------------------------------------------

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn map_at<'a>(v: &'a Value, path: &str) -> Option<&'a Mapping> {
    at(v, path).and_then(Value::as_mapping)
}

/// A string or number rendered as text (YAML `"7400"` and `7400` alike).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `selector` ⊆ `labels`, both string maps; an empty selector selects nothing here.
fn selects(selector: &Mapping, labels: &Mapping) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Parses the duration syntax the binaries accept (humantime) for the units used in
/// deployments: `30s`, `500ms`, `1m30s`, `2h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: expected a number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        total += unit * number as u32;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

// ----- Kubernetes pod templates ------------------------------------------------------

/// A pod template of a workload, with the workload it belongs to.
struct Template<'a> {
    owner: &'a Doc,
    /// The template (`metadata` + `spec`).
    value: &'a Value,
}

impl Template<'_> {
    fn labels(&self) -> Mapping {
        map_at(self.value, "metadata.labels")
            .cloned()
            .unwrap_or_default()
    }
    fn spec(&self) -> &Value {
        at(self.value, "spec").unwrap_or(&Value::Null)
    }
    /// Containers and init containers.
    fn containers(&self) -> impl Iterator<Item = &Value> {
        seq_at(self.spec(), "containers")
            .iter()
            .chain(seq_at(self.spec(), "initContainers"))
    }
    /// How problems name container `c` of this template: `<workload> container <name>`.
    fn container_id(&self, c: &Value) -> String {
        format!("{} container {}", self.owner.id(), container_name(c))
    }
    /// Long-running pods, which need probes; a Job's pods run to completion.
    fn is_service(&self) -> bool {
        matches!(
            self.owner.kind(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        )
    }
}

fn templates(docs: &[Doc]) -> Vec<Template<'_>> {
    docs.iter()
        .filter_map(|doc| {
            let path = match doc.kind() {
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                    "spec.template"
                }
                "CronJob" => "spec.jobTemplate.spec.template",
                _ => return None,
            };
            at(&doc.value, path).map(|value| Template { owner: doc, value })
        })
        .collect()
}

/// The pod templates in `doc`'s namespace whose labels `selector` selects.
fn selected_by<'a>(
    all: &'a [Template<'a>],
    doc: &Doc,
    selector: &Mapping,
) -> Vec<&'a Template<'a>> {
    all.iter()
        .filter(|t| t.owner.namespace() == doc.namespace() && selects(selector, &t.labels()))
        .collect()
}

fn container_name(c: &Value) -> &str {
    str_at(c, "name").unwrap_or("?")
}

/// The value of an environment variable set literally on a container, or through
/// `envFrom` of a ConfigMap among `docs`.
fn env_value(docs: &[Doc], namespace: &str, container: &Value, name: &str) -> Option<String> {
    let literal = seq_at(container, "env")
        .iter()
        .find(|e| str_at(e, "name") == Some(name))
        .and_then(|e| at(e, "value").and_then(scalar));
    literal.or_else(|| {
        seq_at(container, "envFrom").iter().find_map(|from| {
            let cm = str_at(from, "configMapRef.name")?;
            docs.iter()
                .find(|d| d.kind() == "ConfigMap" && d.name() == cm && d.namespace() == namespace)
                .and_then(|d| at(&d.value, &format!("data.{name}")).and_then(scalar))
        })
    })
}

/// The port number a probe's `port` means: a number, or the name of a container port.
fn probe_port(container: &Value, port: &Value) -> Option<u64> {
    match port {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => seq_at(container, "ports")
            .iter()
            .find(|p| str_at(p, "name") == Some(name))
            .and_then(|p| at(p, "containerPort").and_then(Value::as_u64)),
        _ => None,
    }
}

// ----- checks: each returns the problems it found -----------------------------------

fn check_identity(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for doc in docs {
        for field in ["apiVersion", "kind", "metadata.name"] {
            if str_at(&doc.value, field).is_none_or(str::is_empty) {
                problems.push(format!("{}: {field} is missing", doc.id()));
            }
        }
        let key = (
            doc.kind().to_string(),
            doc.namespace().to_string(),
            doc.name().to_string(),
        );
        if !seen.insert(key) {
            problems.push(format!("{}: defined twice", doc.id()));
        }
    }
    problems
}

/// Long-running containers: a readiness probe on `/health/ready` and a liveness probe on
/// `/health/live`, both HTTP on the port the binary's admin server listens on
/// (APITAP_ADMIN_ADDR), which must not be loopback-only or the kubelet cannot reach it.
fn check_probes(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in templates(docs).iter().filter(|t| t.is_service()) {
        for c in t.containers() {
            let who = t.container_id(c);
            let admin = env_value(docs, t.owner.namespace(), c, "APITAP_ADMIN_ADDR");
            let admin_port = match &admin {
                None => {
                    problems.push(format!("{who}: APITAP_ADMIN_ADDR is not set"));
                    None
                }
                Some(addr) => {
                    let (host, port) = addr.rsplit_once(':').unwrap_or(("", ""));
                    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                        problems.push(format!(
                            "{who}: APITAP_ADMIN_ADDR {addr} is loopback; probes cannot reach it"
                        ));
                    }
                    port.parse::<u64>().ok()
                }
            };
            for (probe, path) in [
                ("readinessProbe", "/health/ready"),
                ("livenessProbe", "/health/live"),
                ("startupProbe", "/health/live"),
            ] {
                let Some(p) = at(c, probe) else {
                    if probe != "startupProbe" {
                        problems.push(format!("{who}: no {probe}"));
                    }
                    continue;
                };
                match str_at(p, "httpGet.path") {
                    Some(actual) if actual == path => {}
                    other => {
                        problems.push(format!("{who}: {probe} GETs {other:?}, expected {path:?}"))
                    }
                }
                let port = at(p, "httpGet.port").and_then(|port| probe_port(c, port));
                if port.is_none() || port != admin_port {
                    problems.push(format!(
                        "{who}: {probe} port {port:?} is not the admin port {admin_port:?}"
                    ));
                }
            }
        }
    }
    problems
}

/// Workers drain on SIGTERM for up to APITAP_DRAIN_TIMEOUT; the pod's grace period must be
/// longer, or the kubelet kills the drain.
fn check_worker_grace(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in templates(docs) {
        for c in t.containers() {
            if !runs(c, "apitap-worker") {
                continue;
            }
            let who = t.container_id(c);
            let drain = match env_value(docs, t.owner.namespace(), c, "APITAP_DRAIN_TIMEOUT") {
                None => DEFAULT_DRAIN_TIMEOUT,
                Some(text) => match parse_duration(&text) {
                    Ok(d) => d,
                    Err(e) => {
                        problems.push(format!("{who}: APITAP_DRAIN_TIMEOUT {e}"));
                        continue;
                    }
                },
            };
            // Kubernetes' default grace period is 30 s.
            let grace = at(t.spec(), "terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30);
            if Duration::from_secs(grace) <= drain {
                problems.push(format!(
                    "{who}: terminationGracePeriodSeconds {grace} is not longer than the drain timeout {drain:?}"
                ));
            }
        }
    }
    problems
}

/// Whether a container's command line starts `binary` (directly or via `exec` in a shell).
fn runs(container: &Value, binary: &str) -> bool {
    seq_at(container, "command")
        .iter()
        .chain(seq_at(container, "args"))
        .filter_map(Value::as_str)
        .any(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            part == binary || words.windows(2).any(|w| w == ["exec", binary])
        })
}

/// Whether a container's command line names `binary` anywhere (as a whole word).
fn mentions(container: &Value, binary: &str) -> bool {
    command_text(container)
        .split_whitespace()
        .any(|word| word == binary)
}

/// A shell wrapper must `exec` the binary, so that SIGTERM (drain, clean stop) reaches it.
fn check_exec(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in templates(docs).iter().filter(|t| t.is_service()) {
        for c in t.containers() {
            let command: Vec<&str> = seq_at(c, "command")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let is_shell = command
                .first()
                .is_some_and(|c| c.ends_with("/sh") || c.ends_with("/bash"));
            if !is_shell {
                continue;
            }
            let script: String = seq_at(c, "args")
                .iter()
                .chain(&seq_at(c, "command")[1..])
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n");
            if !script.contains("exec apitap-") {
                problems.push(format!(
                    "{}: the shell wrapper does not exec the binary",
                    t.container_id(c)
                ));
            }
        }
    }
    problems
}

fn check_resources(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in templates(docs) {
        for c in t.containers() {
            for field in [
                "resources.requests.cpu",
                "resources.requests.memory",
                "resources.limits.cpu",
                "resources.limits.memory",
            ] {
                if at(c, field).and_then(scalar).is_none() {
                    problems.push(format!("{}: {field} is not set", t.container_id(c)));
                }
            }
        }
    }
    problems
}

/// Non-root everywhere; no privilege escalation.
fn check_security(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in templates(docs) {
        let pod_non_root = at(t.spec(), "securityContext.runAsNonRoot").and_then(Value::as_bool);
        for c in t.containers() {
            let who = t.container_id(c);
            let non_root = at(c, "securityContext.runAsNonRoot")
                .and_then(Value::as_bool)
                .or(pod_non_root);
            if non_root != Some(true) {
                problems.push(format!("{who}: runAsNonRoot is not true"));
            }
            if at(c, "securityContext.allowPrivilegeEscalation").and_then(Value::as_bool)
                != Some(false)
            {
                problems.push(format!("{who}: allowPrivilegeEscalation is not false"));
            }
        }
    }
    problems
}

/// StatefulSets: volume claim templates that a container mounts (coordinators: their Raft
/// data; the workers' set holds no state), and a `serviceName` that is a headless Service
/// selecting the set's pods and publishing them before they are ready (coordinators are
/// ready only once there is a leader, and peers must reach them first).
fn check_statefulsets(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for set in docs.iter().filter(|d| d.kind() == "StatefulSet") {
        let who = set.id();
        let claims: Vec<&str> = seq_at(&set.value, "spec.volumeClaimTemplates")
            .iter()
            .filter_map(|c| str_at(c, "metadata.name"))
            .collect();
        let coordinators = seq_at(&set.value, "spec.template.spec.containers")
            .iter()
            .any(|c| mentions(c, "apitap-coordinator"));
        if claims.is_empty() && coordinators {
            problems.push(format!("{who}: no volumeClaimTemplates"));
        }
        let mounted: BTreeSet<&str> = seq_at(&set.value, "spec.template.spec.containers")
            .iter()
            .flat_map(|c| seq_at(c, "volumeMounts"))
            .filter_map(|m| str_at(m, "name"))
            .collect();
        for claim in &claims {
            if !mounted.contains(claim) {
                problems.push(format!("{who}: volume claim {claim} is not mounted"));
            }
        }
        let labels = map_at(&set.value, "spec.template.metadata.labels")
            .cloned()
            .unwrap_or_default();
        match map_at(&set.value, "spec.selector.matchLabels") {
            Some(sel) if selects(sel, &labels) => {}
            _ => problems.push(format!(
                "{who}: spec.selector does not match the template labels"
            )),
        }
        let Some(service_name) = str_at(&set.value, "spec.serviceName") else {
            problems.push(format!("{who}: no serviceName"));
            continue;
        };
        let service = docs.iter().find(|d| {
            d.kind() == "Service" && d.name() == service_name && d.namespace() == set.namespace()
        });
        let Some(service) = service else {
            problems.push(format!(
                "{who}: serviceName {service_name} is not a Service here"
            ));
            continue;
        };
        if str_at(&service.value, "spec.clusterIP") != Some("None") {
            problems.push(format!(
                "{who}: Service {service_name} is not headless (clusterIP: None)"
            ));
        }
        if at(&service.value, "spec.publishNotReadyAddresses").and_then(Value::as_bool)
            != Some(true)
        {
            problems.push(format!(
                "{who}: Service {service_name} does not publish not-ready addresses"
            ));
        }
        match map_at(&service.value, "spec.selector") {
            Some(sel) if selects(sel, &labels) => {}
            _ => problems.push(format!(
                "{who}: Service {service_name} does not select the set's pods"
            )),
        }
    }
    problems
}

/// PodDisruptionBudgets select the coordinator pods (and nothing else), at most one down.
fn check_pdbs(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    let all = templates(docs);
    for pdb in docs.iter().filter(|d| d.kind() == "PodDisruptionBudget") {
        let who = pdb.id();
        let selector = map_at(&pdb.value, "spec.selector.matchLabels")
            .cloned()
            .unwrap_or_default();
        let selected = selected_by(&all, pdb, &selector);
        let owners: Vec<String> = selected.iter().map(|t| t.owner.id()).collect();
        let coordinators = selected
            .iter()
            .filter(|t| t.containers().any(|c| runs(c, "apitap-coordinator")))
            .count();
        if coordinators == 0 || coordinators != selected.len() {
            problems.push(format!(
                "{who}: selects {owners:?}, expected the coordinator pods only"
            ));
        }
        if at(&pdb.value, "spec.maxUnavailable").and_then(scalar) != Some("1".to_string()) {
            problems.push(format!("{who}: maxUnavailable is not 1"));
        }
    }
    problems
}

/// HorizontalPodAutoscalers scale the worker set (a StatefulSet, for the workers' named
/// certificates, or a Deployment) on CPU, which needs CPU requests.
fn check_hpas(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for hpa in docs
        .iter()
        .filter(|d| d.kind() == "HorizontalPodAutoscaler")
    {
        let who = hpa.id();
        let kind = str_at(&hpa.value, "spec.scaleTargetRef.kind").unwrap_or("");
        let api = str_at(&hpa.value, "spec.scaleTargetRef.apiVersion").unwrap_or("");
        let name = str_at(&hpa.value, "spec.scaleTargetRef.name").unwrap_or("");
        let target = docs.iter().find(|d| {
            d.kind() == kind
                && d.name() == name
                && d.namespace() == hpa.namespace()
                && str_at(&d.value, "apiVersion") == Some(api)
        });
        let Some(target) = target else {
            problems.push(format!(
                "{who}: targets {api} {kind}/{name}, which is not defined"
            ));
            continue;
        };
        let template = templates(std::slice::from_ref(target));
        let is_worker = matches!(kind, "Deployment" | "StatefulSet")
            && template
                .iter()
                .all(|t| t.containers().any(|c| runs(c, "apitap-worker")));
        if !is_worker {
            problems.push(format!(
                "{who}: target {} is not the worker set",
                target.id()
            ));
        }
        let cpu_metric = seq_at(&hpa.value, "spec.metrics").iter().any(|m| {
            str_at(m, "type") == Some("Resource") && str_at(m, "resource.name") == Some("cpu")
        });
        if !cpu_metric {
            problems.push(format!("{who}: no CPU resource metric"));
        }
        for t in &template {
            for c in t.containers() {
                if at(c, "resources.requests.cpu").is_none() {
                    problems.push(format!(
                        "{who}: container {} has no CPU request to compute utilization",
                        container_name(c)
                    ));
                }
            }
        }
        if at(&target.value, "spec.replicas").is_some() {
            problems.push(format!(
                "{who}: {} sets spec.replicas, which every apply resets under the autoscaler",
                target.id()
            ));
        }
        let min = at(&hpa.value, "spec.minReplicas").and_then(Value::as_u64);
        let max = at(&hpa.value, "spec.maxReplicas").and_then(Value::as_u64);
        if !matches!((min, max), (Some(min), Some(max)) if 1 <= min && min <= max) {
            problems.push(format!("{who}: replicas {min:?}..{max:?} are not a range"));
        }
    }
    problems
}

/// Every Service with a selector selects some pod template in its namespace, and each of its
/// target ports names a port of those pods.
fn check_services(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    let all = templates(docs);
    for svc in docs.iter().filter(|d| d.kind() == "Service") {
        let who = svc.id();
        let Some(selector) = map_at(&svc.value, "spec.selector") else {
            continue;
        };
        let selected = selected_by(&all, svc, selector);
        if selected.is_empty() {
            problems.push(format!(
                "{who}: selector {selector:?} matches no pod template"
            ));
            continue;
        }
        for port in seq_at(&svc.value, "spec.ports") {
            let target = at(port, "targetPort").or_else(|| at(port, "port"));
            let served = selected.iter().all(|t| {
                t.containers().any(|c| {
                    target.is_some_and(|target| {
                        probe_port(c, target).is_some_and(|n| {
                            seq_at(c, "ports")
                                .iter()
                                .any(|p| at(p, "containerPort").and_then(Value::as_u64) == Some(n))
                        })
                    })
                })
            });
            if !served {
                problems.push(format!(
                    "{who}: targetPort {:?} is not a port of the selected pods",
                    target.and_then(scalar)
                ));
            }
        }
    }
    problems
}

/// Every NetworkPolicy selects some pods, and the ports it opens are ports of those pods
/// (a misspelt named port silently opens nothing).
fn check_network_policies(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    let all = templates(docs);
    for policy in docs.iter().filter(|d| d.kind() == "NetworkPolicy") {
        let who = policy.id();
        let selector = map_at(&policy.value, "spec.podSelector.matchLabels")
            .cloned()
            .unwrap_or_default();
        let selected = selected_by(&all, policy, &selector);
        if selected.is_empty() {
            problems.push(format!(
                "{who}: podSelector {selector:?} matches no pod template"
            ));
            continue;
        }
        for rule in seq_at(&policy.value, "spec.ingress") {
            for port in seq_at(rule, "ports") {
                let Some(port) = at(port, "port") else {
                    continue;
                };
                let served = selected
                    .iter()
                    .all(|t| t.containers().any(|c| probe_port(c, port).is_some()));
                if !served {
                    problems.push(format!(
                        "{who}: port {:?} is not a port of the selected pods",
                        scalar(port)
                    ));
                }
            }
        }
    }
    problems
}

/// The kustomization lists exactly the manifest files of its directory.
fn check_kustomization(kustomization: &Value, dir_files: &BTreeSet<String>) -> Vec<String> {
    let listed: BTreeSet<String> = seq_at(kustomization, "resources")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut problems = Vec::new();
    for missing in dir_files.difference(&listed) {
        problems.push(format!("kustomization.yaml does not list {missing}"));
    }
    for extra in listed.difference(dir_files) {
        problems.push(format!(
            "kustomization.yaml lists {extra}, which does not exist"
        ));
    }
    problems
}

// ----- compose ------------------------------------------------------------------------

/// A service's environment as a map, from either the map or the `KEY=value` list form.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match at(service, "environment") {
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v).unwrap_or_default())))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The command line of a compose service as one string.
fn compose_command(service: &Value) -> String {
    ["entrypoint", "command"]
        .iter()
        .filter_map(|key| at(service, key))
        .flat_map(|v| match v {
            Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect::<Vec<_>>(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The named volume a compose volume entry uses, if it is one (not a bind mount or an
/// anonymous volume).
fn named_volume(entry: &Value) -> Option<String> {
    let source = match entry {
        Value::String(short) => {
            let (source, _) = short.split_once(':')?;
            source.to_string()
        }
        Value::Mapping(_) => {
            if str_at(entry, "type").unwrap_or("volume") != "volume" {
                return None;
            }
            str_at(entry, "source")?.to_string()
        }
        _ => return None,
    };
    let bind = source.starts_with(['.', '/', '~', '$']);
    (!bind).then_some(source)
}

fn check_compose(compose: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(services) = map_at(compose, "services").filter(|s| !s.is_empty()) else {
        return vec!["compose: no services".into()];
    };
    let volumes: BTreeSet<String> = map_at(compose, "volumes")
        .map(|m| m.keys().filter_map(scalar).collect())
        .unwrap_or_default();
    let service = |name: &str| services.get(name);

    for (name, svc) in services {
        let name = scalar(name).unwrap_or_default();
        for entry in seq_at(svc, "volumes") {
            if let Some(volume) = named_volume(entry) {
                if !volumes.contains(&volume) {
                    problems.push(format!(
                        "compose service {name}: volume {volume} is not defined under volumes"
                    ));
                }
            }
        }
        let depends: Vec<(String, Option<String>)> = match at(svc, "depends_on") {
            Some(Value::Sequence(items)) => {
                items.iter().filter_map(scalar).map(|d| (d, None)).collect()
            }
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((scalar(k)?, str_at(v, "condition").map(str::to_string))))
                .collect(),
            _ => Vec::new(),
        };
        for (dep, condition) in depends {
            let Some(target) = service(&dep) else {
                problems.push(format!(
                    "compose service {name}: depends on {dep}, which is not a service"
                ));
                continue;
            };
            let checked = seq_at(target, "healthcheck.test")
                .first()
                .and_then(Value::as_str);
            let disabled = at(target, "healthcheck.disable").and_then(Value::as_bool) == Some(true);
            if condition.as_deref() == Some("service_healthy")
                && (disabled || checked.is_none_or(|t| t == "NONE"))
            {
                problems.push(format!(
                    "compose service {name}: waits for {dep} to be healthy, which has no healthcheck"
                ));
            }
        }
    }

    // Coordinators: distinct node ids, advertised under their own service name, exactly
    // one bootstraps the cluster, and every other one is added by a one-shot service.
    let coordinators: Vec<(String, BTreeMap<String, String>)> = services
        .iter()
        .filter(|(_, svc)| compose_command(svc).contains("apitap-coordinator"))
        .filter_map(|(name, svc)| Some((scalar(name)?, compose_env(svc))))
        .collect();
    if coordinators.is_empty() {
        problems.push("compose: no coordinator service".into());
    }
    let mut ids = BTreeSet::new();
    let mut initializers = Vec::new();
    let mut advertised = Vec::new();
    for (name, env) in &coordinators {
        let id = env.get("APITAP_NODE_ID");
        match id.and_then(|id| id.parse::<u64>().ok()) {
            Some(n) if n > 0 && ids.insert(n) => {}
            _ => problems.push(format!(
                "compose service {name}: APITAP_NODE_ID {id:?} is missing, zero or repeated"
            )),
        }
        match env.get("APITAP_ADVERTISE_ADDR") {
            Some(addr) if addr.split(':').next() == Some(name.as_str()) => {
                advertised.push(addr.clone())
            }
            other => problems.push(format!(
                "compose service {name}: APITAP_ADVERTISE_ADDR {other:?} is not {name}:<port>"
            )),
        }
        let command = service(name).map(compose_command).unwrap_or_default();
        if env.get("APITAP_INIT").map(String::as_str) == Some("true") || command.contains("--init")
        {
            initializers.push(name.clone());
        }
        if let Some(v) = env
            .get("APITAP_INIT")
            .filter(|v| !matches!(v.as_str(), "true" | "false"))
        {
            problems.push(format!(
                "compose service {name}: APITAP_INIT={v} is rejected; use true or false"
            ));
        }
    }
    if initializers.len() != 1 {
        problems.push(format!(
            "compose: {initializers:?} bootstrap the cluster; exactly one coordinator must"
        ));
    }
    let joins: String = services
        .values()
        .map(compose_command)
        .filter(|c| c.contains("cluster add"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, env) in &coordinators {
        if initializers.contains(name) {
            continue;
        }
        let (Some(id), Some(addr)) = (env.get("APITAP_NODE_ID"), env.get("APITAP_ADVERTISE_ADDR"))
        else {
            continue;
        };
        if !joins.contains(&format!("add {id} {addr}")) {
            problems.push(format!(
                "compose: no service runs `apitapctl cluster add {id} {addr}` for {name}"
            ));
        }
    }

    // Workers: reach every coordinator, and docker waits out the drain before SIGKILL.
    let workers: Vec<(&Value, &Value)> = services
        .iter()
        .filter(|(_, svc)| compose_command(svc).contains("apitap-worker"))
        .collect();
    if workers.is_empty() {
        problems.push("compose: no worker service".into());
    }
    for (name, svc) in workers {
        let name = scalar(name).unwrap_or_default();
        let env = compose_env(svc);
        let drain = env
            .get("APITAP_DRAIN_TIMEOUT")
            .map(|d| parse_duration(d).unwrap_or(Duration::MAX))
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        // compose's default stop_grace_period is 10 s.
        let grace = str_at(svc, "stop_grace_period")
            .map(|g| parse_duration(g).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(10));
        if grace <= drain {
            problems.push(format!(
                "compose service {name}: stop_grace_period {grace:?} is not longer than the drain timeout {drain:?}"
            ));
        }
        let listed: BTreeSet<&str> = env
            .get("APITAP_COORDINATOR")
            .map(|c| c.split(',').map(str::trim).collect())
            .unwrap_or_default();
        for addr in &advertised {
            if !listed.contains(addr.as_str()) {
                problems.push(format!(
                    "compose service {name}: APITAP_COORDINATOR does not list {addr}"
                ));
            }
        }
    }
    problems
}

// ----- TLS, tokens and sealed secrets on by default -------------------------------------

/// The `APITAP_*` variables that name a TLS file, which every ApiTap process needs.
const TLS_VARS: [&str; 3] = ["APITAP_TLS_CA", "APITAP_TLS_CERT", "APITAP_TLS_KEY"];

/// A container's command and arguments as one text (a start script included).
fn command_text(container: &Value) -> String {
    seq_at(container, "command")
        .iter()
        .chain(seq_at(container, "args"))
        .filter_map(scalar)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value a start script gives `name` (`export NAME="value"` or `NAME=value`).
fn script_value(script: &str, name: &str) -> Option<String> {
    let rest = &script[script.find(&format!("{name}="))? + name.len() + 1..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split_whitespace().next()?,
    };
    Some(value.to_string())
}

/// Secrets created by a `kubectl ... create secret generic NAME` line of the operations
/// guide: the ones an operator makes from deploy/tls/make-certs.sh's output.
fn documented_secrets() -> BTreeSet<String> {
    let guide = deploy_dir().join("../docs/operations.md");
    let text =
        std::fs::read_to_string(&guide).unwrap_or_else(|e| panic!("{}: {e}", guide.display()));
    text.split("create secret generic ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Kubernetes: every container that runs an ApiTap binary (coordinator, worker, apitapctl)
/// is given the CA, a certificate and a key, literally, through a ConfigMap or by its start
/// script, each under a mounted Secret volume; coordinators also a secrets key file; nothing
/// sets APITAP_INSECURE or passes --insecure; and every Secret a pod mounts is defined here
/// or created by a documented `kubectl create secret` (`documented`).
fn check_k8s_tls(docs: &[Doc], documented: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let defined: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d.kind() == "Secret")
        .map(|d| d.name())
        .collect();
    for t in templates(docs) {
        let secret_volumes: BTreeMap<&str, &str> = seq_at(t.spec(), "volumes")
            .iter()
            .filter_map(|v| Some((str_at(v, "name")?, str_at(v, "secret.secretName")?)))
            .collect();
        for secret in secret_volumes.values() {
            if !defined.contains(secret) && !documented.contains(*secret) {
                problems.push(format!(
                    "{}: mounts the Secret {secret}, which is neither defined here nor created in docs/operations.md",
                    t.owner.id()
                ));
            }
        }
        for c in t.containers() {
            let who = t.container_id(c);
            let script = command_text(c);
            if env_value(docs, t.owner.namespace(), c, "APITAP_INSECURE").is_some()
                || script.contains("--insecure")
                || script.contains("APITAP_INSECURE")
            {
                problems.push(format!(
                    "{who}: opts into plaintext (APITAP_INSECURE or --insecure)"
                ));
            }
            let coordinator = runs(c, "apitap-coordinator");
            if !(coordinator || runs(c, "apitap-worker") || script.contains("apitapctl")) {
                continue;
            }
            let secret_mounts: Vec<&str> = seq_at(c, "volumeMounts")
                .iter()
                .filter(|m| str_at(m, "name").is_some_and(|n| secret_volumes.contains_key(n)))
                .filter_map(|m| str_at(m, "mountPath"))
                .collect();
            let mut vars = TLS_VARS.to_vec();
            if coordinator {
                vars.push("APITAP_SECRETS_KEY_FILE");
            }
            for var in vars {
                let value = env_value(docs, t.owner.namespace(), c, var)
                    .or_else(|| script_value(&script, var));
                match value {
                    None => problems.push(format!("{who}: {var} is not set")),
                    Some(path)
                        if !secret_mounts.iter().any(|m| {
                            path.starts_with(&format!("{}/", m.trim_end_matches('/')))
                        }) =>
                    {
                        problems.push(format!("{who}: {var} {path} is not in a mounted Secret"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

/// The mount targets of a compose service's volumes (short `src:target[:ro]` or long form).
fn compose_targets(service: &Value) -> Vec<String> {
    seq_at(service, "volumes")
        .iter()
        .filter_map(|v| match v {
            Value::String(short) => short.split(':').nth(1).map(str::to_string),
            other => str_at(other, "target").map(str::to_string),
        })
        .collect()
}

/// Compose: every service running an ApiTap binary has APITAP_TLS_CA/CERT/KEY under one of
/// its volume mounts, coordinators a secrets key file too; a coordinator's certificate is
/// `coordinator-<APITAP_NODE_ID>.pem` and a worker's `<APITAP_WORKER_ID>.pem`; the one-shot
/// service running make-certs issues each of them (coordinators for their service name,
/// the host they are dialled by) and every coordinator waits for it to complete; nothing
/// sets APITAP_INSECURE or passes --insecure.
fn check_compose_tls(compose: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(services) = map_at(compose, "services") else {
        return vec!["compose: no services".into()];
    };
    let certs = services
        .iter()
        .find(|(_, svc)| compose_command(svc).contains("make-certs"));
    let Some((certs_name, certs)) = certs else {
        return vec!["compose: no service runs make-certs to create the certificates".into()];
    };
    let certs_name = scalar(certs_name).unwrap_or_default();
    let issues = compose_command(certs);
    for (name, svc) in services {
        let name = scalar(name).unwrap_or_default();
        let env = compose_env(svc);
        let command = compose_command(svc);
        if env.contains_key("APITAP_INSECURE") || command.contains("--insecure") {
            problems.push(format!(
                "compose service {name}: opts into plaintext (APITAP_INSECURE or --insecure)"
            ));
        }
        let coordinator = command.contains("apitap-coordinator");
        let worker = command.contains("apitap-worker");
        if !(coordinator || worker || command.contains("apitapctl")) {
            continue;
        }
        let targets = compose_targets(svc);
        let mut vars = TLS_VARS.to_vec();
        if coordinator {
            vars.push("APITAP_SECRETS_KEY_FILE");
        }
        for var in vars {
            match env.get(var) {
                None => problems.push(format!("compose service {name}: {var} is not set")),
                Some(path) if !targets.iter().any(|t| path.starts_with(&format!("{t}/"))) => {
                    problems.push(format!(
                        "compose service {name}: {var} {path} is not under a mounted volume"
                    ))
                }
                Some(_) => {}
            }
        }
        let cert = env
            .get("APITAP_TLS_CERT")
            .map(|c| c.rsplit('/').next().unwrap_or(c));
        let holder = cert
            .and_then(|c| c.strip_suffix(".pem"))
            .unwrap_or_default();
        let issued = if coordinator {
            let id = env.get("APITAP_NODE_ID").cloned().unwrap_or_default();
            let depends = str_at(svc, &format!("depends_on.{certs_name}.condition"));
            if depends != Some("service_completed_successfully") {
                problems.push(format!(
                    "compose service {name}: does not wait for {certs_name} to complete"
                ));
            }
            (holder == format!("coordinator-{id}")).then(|| format!("--coordinator {id}={name}"))
        } else if worker {
            let id = env.get("APITAP_WORKER_ID").cloned().unwrap_or_default();
            (holder == id).then(|| format!("--worker {id}"))
        } else {
            Some(format!("--user {holder}"))
        };
        match issued {
            None => problems.push(format!(
                "compose service {name}: its certificate {cert:?} is not the one of its id"
            )),
            Some(arg) if !format!("{issues} ").contains(&format!("{arg} ")) => {
                problems.push(format!(
                    "compose service {name}: {certs_name} does not issue its certificate ({arg})"
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

// ----- the real files -----------------------------------------------------------------

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

fn kinds(docs: &[Doc]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for doc in docs {
        *kinds.entry(doc.kind().to_string()).or_default() += 1;
    }
    kinds
}

#[test]
fn every_document_parses_and_names_itself() {
    let docs = all_docs();
    let k8s: Vec<Doc> = docs
        .into_iter()
        .filter(|d| !is_compose(d) && !is_kustomization(d))
        .collect();
    assert_none("identity", check_identity(&k8s));
    let kinds = kinds(&k8s);
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Job",
    ] {
        assert!(
            kinds.contains_key(kind),
            "no {kind} in deploy/k8s: {kinds:?}"
        );
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = deploy_dir().join("k8s");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    let files: BTreeSet<String> = files
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    let kustomizations: Vec<Doc> = all_docs().into_iter().filter(is_kustomization).collect();
    assert_eq!(kustomizations.len(), 1, "one deploy/k8s/kustomization.yaml");
    assert_none(
        "kustomization",
        check_kustomization(&kustomizations[0].value, &files),
    );
}

#[test]
fn long_running_pods_probe_the_health_endpoints_on_the_admin_port() {
    let docs = k8s_docs();
    let probed = templates(&docs).iter().filter(|t| t.is_service()).count();
    assert_eq!(probed, 2, "the coordinator and the worker StatefulSets");
    assert_none("probes", check_probes(&docs));
    assert_none("exec", check_exec(&docs));
}

#[test]
fn worker_grace_period_outlasts_the_drain() {
    let docs = k8s_docs();
    assert!(
        templates(&docs)
            .iter()
            .any(|t| t.containers().any(|c| runs(c, "apitap-worker"))),
        "no worker pod template"
    );
    assert_none("grace period", check_worker_grace(&docs));
}

#[test]
fn every_container_has_resources_and_runs_unprivileged() {
    let docs = k8s_docs();
    assert_none("resources", check_resources(&docs));
    assert_none("security", check_security(&docs));
}

/// The manifests hold `count` objects of `kind`, in which `check` finds no problem.
fn assert_kind(kind: &str, count: usize, check: fn(&[Doc]) -> Vec<String>) {
    let docs = k8s_docs();
    assert_eq!(kinds(&docs).get(kind), Some(&count), "{kind}");
    assert_none(kind, check(&docs));
}

#[test]
fn coordinator_statefulset_has_storage_and_a_headless_service() {
    // The coordinators' and the workers'.
    assert_kind("StatefulSet", 2, check_statefulsets);
}

#[test]
fn pdb_covers_the_coordinators() {
    assert_kind("PodDisruptionBudget", 1, check_pdbs);
}

#[test]
fn hpa_scales_the_worker_set() {
    assert_kind("HorizontalPodAutoscaler", 1, check_hpas);
}

#[test]
fn every_service_and_network_policy_selects_pods_that_serve_its_ports() {
    let docs = k8s_docs();
    assert_none("services", check_services(&docs));
    assert_none("network policies", check_network_policies(&docs));
}

#[test]
fn compose_file_is_wired() {
    assert_none("compose", check_compose(&compose()));
}

/// The Dockerfile exposes the ports the manifests use and ships the health check script.
#[test]
fn dockerfile_matches_the_manifests() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let exposed: BTreeSet<u64> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect();
    let docs = k8s_docs();
    for t in templates(&docs) {
        for c in t.containers() {
            for port in seq_at(c, "ports") {
                let n = at(port, "containerPort").and_then(Value::as_u64).unwrap();
                assert!(
                    exposed.contains(&n),
                    "{}: port {n} is not EXPOSEd by deploy/Dockerfile ({exposed:?})",
                    t.owner.id()
                );
            }
        }
    }
    let user = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .next_back()
        .expect("the Dockerfile sets USER");
    let uid: u64 =
        user.split(':').next().unwrap().parse().unwrap_or_else(|_| {
            panic!("USER {user} must be numeric for runAsNonRoot to verify it")
        });
    assert_ne!(uid, 0, "USER must not be root");
    assert!(dockerfile.contains("HEALTHCHECK"), "no HEALTHCHECK");
    let script = deploy_dir().join("docker/healthcheck.sh");
    assert!(
        dockerfile.contains("deploy/docker/healthcheck.sh") && script.is_file(),
        "the HEALTHCHECK script deploy/docker/healthcheck.sh is missing or not copied"
    );
}

#[test]
fn tls_tokens_and_sealed_secrets_are_on_by_default() {
    assert_none("k8s TLS", check_k8s_tls(&k8s_docs(), &documented_secrets()));
    assert_none("compose TLS", check_compose_tls(&compose()));
    // The certificates of the workers' StatefulSet: as many as the autoscaler may start.
    let guide = std::fs::read_to_string(deploy_dir().join("../docs/operations.md")).unwrap();
    let docs = k8s_docs();
    let max = docs
        .iter()
        .find(|d| d.kind() == "HorizontalPodAutoscaler")
        .and_then(|h| at(&h.value, "spec.maxReplicas").and_then(Value::as_u64))
        .expect("the workers' HorizontalPodAutoscaler has maxReplicas");
    assert!(
        guide.contains(&format!("seq 0 {}", max - 1)),
        "docs/operations.md must issue worker certificates apitap-worker-0..{} (seq 0 {})",
        max - 1,
        max - 1
    );
}

#[test]
fn plaintext_or_missing_certificates_are_caught() {
    let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg, namespace: n }
data: { APITAP_INSECURE: "true" }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: c, namespace: n }
spec:
  template:
    spec:
      volumes: [{ name: tls, secret: { secretName: nowhere } }]
      containers:
        - name: coordinator
          command: [/bin/sh, -c]
          args: ["export APITAP_TLS_CERT=/etc/tls/c.pem; exec apitap-coordinator"]
          envFrom: [{ configMapRef: { name: cfg } }]
          env: [{ name: APITAP_TLS_CA, value: /elsewhere/ca.pem }]
          volumeMounts: [{ name: tls, mountPath: /etc/tls }]
"#;
    let problems = check_k8s_tls(&docs_of(text), &BTreeSet::new());
    assert_finds(problems.clone(), "opts into plaintext");
    assert_finds(problems.clone(), "Secret nowhere, which is neither defined");
    assert_finds(
        problems.clone(),
        "APITAP_TLS_CA /elsewhere/ca.pem is not in a mounted Secret",
    );
    assert_finds(problems.clone(), "APITAP_TLS_KEY is not set");
    assert_finds(problems.clone(), "APITAP_SECRETS_KEY_FILE is not set");
    assert!(
        !problems.iter().any(|p| p.contains("APITAP_TLS_CERT")),
        "a certificate exported by the start script counts: {problems:#?}"
    );

    let compose = r#"
services:
  certs:
    command: [make-certs, --coordinator, 1=c1, --worker, w-1]
  c1:
    command: [apitap-coordinator]
    environment:
      APITAP_NODE_ID: "2"
      APITAP_INSECURE: "true"
      APITAP_TLS_CA: /tls/ca.pem
      APITAP_TLS_CERT: /tls/coordinator-1.pem
      APITAP_TLS_KEY: /tls/coordinator-1-key.pem
    volumes: ["tls:/tls:ro"]
  w:
    command: [apitap-worker]
    depends_on: { certs: { condition: service_completed_successfully } }
    environment:
      APITAP_WORKER_ID: w-2
      APITAP_TLS_CA: /tls/ca.pem
      APITAP_TLS_CERT: /tls/w-2.pem
      APITAP_TLS_KEY: /tls/w-2-key.pem
"#;
    let problems = check_compose_tls(&docs_of(compose).remove(0).value);
    assert_finds(problems.clone(), "compose service c1: opts into plaintext");
    assert_finds(problems.clone(), "c1: APITAP_SECRETS_KEY_FILE is not set");
    assert_finds(problems.clone(), "c1: does not wait for certs to complete");
    assert_finds(
        problems.clone(),
        "c1: its certificate Some(\"coordinator-1.pem\") is not the one of its id",
    );
    assert_finds(
        problems.clone(),
        "w: APITAP_TLS_CA /tls/ca.pem is not under a mounted volume",
    );
    assert_finds(
        problems,
        "w: certs does not issue its certificate (--worker w-2)",
    );
}

/// deploy/tls/make-certs.sh issues what the binaries accept: certificates rustls loads, each
/// naming exactly its holder's identity; a second run keeps them; a bad name is refused.
/// Needs openssl (the script's one dependency); skipped without it.
#[test]
fn make_certs_issues_what_the_binaries_accept() {
    use apitap_proto::identity::Identity;
    use apitap_proto::tls::TlsFiles;
    use std::process::Command;

    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let out = std::env::temp_dir().join(format!("apitap-make-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = deploy_dir().join("tls/make-certs.sh");
    let run = |extra: &[&str]| {
        Command::new("sh")
            .arg(&script)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .expect("run sh")
    };
    let args = [
        "--coordinator",
        "1=coordinator-1,127.0.0.1",
        "--worker",
        "worker-1",
        "--user",
        "ops",
    ];
    let first = run(&args);
    assert!(first.status.success(), "{first:?}");
    let issued = [
        ("coordinators", "coordinator-1", Identity::Coordinator(1)),
        ("workers", "worker-1", Identity::Worker("worker-1".into())),
        ("users", "ops", Identity::User("ops".into())),
    ];
    for (dir, name, identity) in &issued {
        let dir = out.join(dir);
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        files.load().unwrap_or_else(|e| panic!("{name}: {e}"));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&files.cert)
            .output()
            .expect("openssl x509");
        assert_eq!(Identity::from_cert(&der.stdout).as_ref(), Ok(identity));
    }
    let key = std::fs::read_to_string(out.join("secrets/secrets.key")).unwrap();
    assert!(
        key.starts_with("k1 ") && key.trim().len() == 3 + 64,
        "{key}"
    );

    let cert = std::fs::read(out.join("workers/worker-1.pem")).unwrap();
    let again = run(&args);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read(out.join("workers/worker-1.pem")).unwrap(),
        cert
    );

    let bad = run(&["--worker", "a;rm"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("may hold only letters"),
        "{bad:?}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

// ----- the checks find what they are for ---------------------------------------------

fn docs_of(text: &str) -> Vec<Doc> {
    parse_docs("test.yaml", text)
}

fn assert_finds(problems: Vec<String>, expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}, got {problems:#?}"
    );
}

const WORKER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: w, namespace: n }
spec:
  selector: { matchLabels: { app: w } }
  template:
    metadata: { labels: { app: w } }
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: worker
          command: [apitap-worker]
          env:
            - { name: APITAP_ADMIN_ADDR, value: "127.0.0.1:7402" }
            - { name: APITAP_DRAIN_TIMEOUT, value: 30s }
          ports: [{ name: admin, containerPort: 7402 }]
          readinessProbe: { httpGet: { path: /healthz, port: admin } }
          livenessProbe: { httpGet: { path: /health/live, port: 7401 } }
"#;

#[test]
fn broken_worker_is_caught() {
    let docs = docs_of(WORKER);
    let probes = check_probes(&docs);
    assert_finds(probes.clone(), "is loopback");
    assert_finds(probes.clone(), "readinessProbe GETs Some(\"/healthz\")");
    assert_finds(
        probes,
        "livenessProbe port Some(7401) is not the admin port Some(7402)",
    );
    assert_finds(
        check_worker_grace(&docs),
        "terminationGracePeriodSeconds 30 is not longer than the drain timeout 30s",
    );
    assert_finds(check_resources(&docs), "resources.limits.memory is not set");
    assert_finds(check_security(&docs), "runAsNonRoot is not true");
}

#[test]
fn drain_timeout_from_a_config_map_counts() {
    let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg, namespace: n }
data: { APITAP_DRAIN_TIMEOUT: 1m }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: w, namespace: n }
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 45
      containers:
        - name: worker
          command: [apitap-worker]
          envFrom: [{ configMapRef: { name: cfg } }]
"#;
    assert_finds(
        check_worker_grace(&docs_of(text)),
        "terminationGracePeriodSeconds 45 is not longer than the drain timeout 60s",
    );
}

#[test]
fn broken_statefulset_pdb_hpa_service_and_policy_are_caught() {
    let text = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: c, namespace: n }
spec:
  serviceName: peers
  selector: { matchLabels: { app: c } }
  template:
    metadata: { labels: { app: c } }
    spec:
      containers:
        - name: coordinator
          command: [/bin/sh, -c]
          args: ["apitap-coordinator --id 1"]
          ports: [{ name: grpc, containerPort: 7400 }]
---
apiVersion: v1
kind: Service
metadata: { name: peers, namespace: n }
spec:
  selector: { app: coordinator }
  ports: [{ port: 7400, targetPort: grpc }]
---
apiVersion: v1
kind: Service
metadata: { name: client, namespace: n }
spec:
  selector: { app: c }
  ports: [{ port: 7401, targetPort: admin }]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: pdb, namespace: n }
spec:
  maxUnavailable: 2
  selector: { matchLabels: { app: w } }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: np, namespace: n }
spec:
  podSelector: { matchLabels: { app: c } }
  ingress: [{ ports: [{ port: grcp }] }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: nobody, namespace: n }
spec:
  podSelector: { matchLabels: { app: nobody } }
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: { name: hpa, namespace: n }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: workers }
  minReplicas: 3
  maxReplicas: 2
"#;
    let docs = docs_of(text);
    let sets = check_statefulsets(&docs);
    assert_finds(sets.clone(), "no volumeClaimTemplates");
    assert_finds(sets.clone(), "is not headless");
    assert_finds(sets.clone(), "does not publish not-ready addresses");
    assert_finds(sets, "does not select the set's pods");
    assert_finds(check_exec(&docs), "does not exec the binary");
    let pdbs = check_pdbs(&docs);
    assert_finds(pdbs.clone(), "expected the coordinator pods only");
    assert_finds(pdbs, "maxUnavailable is not 1");
    assert_finds(check_hpas(&docs), "which is not defined");
    let services = check_services(&docs);
    assert_finds(services.clone(), "test.yaml: Service/peers: selector");
    assert_finds(services, "targetPort Some(\"admin\") is not a port");
    let policies = check_network_policies(&docs);
    assert_finds(policies.clone(), "port Some(\"grcp\") is not a port");
    assert_finds(policies, "NetworkPolicy/nobody: podSelector");
}

#[test]
fn hpa_on_a_non_worker_or_with_fixed_replicas_is_caught() {
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: n }
spec:
  replicas: 2
  template:
    spec:
      containers: [{ name: api, command: [apitap-mock-api] }]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: { name: hpa, namespace: n }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: api }
  minReplicas: 1
  maxReplicas: 2
  metrics: [{ type: Resource, resource: { name: memory } }]
"#;
    let problems = check_hpas(&docs_of(text));
    assert_finds(problems.clone(), "is not the worker set");
    assert_finds(problems.clone(), "no CPU resource metric");
    assert_finds(problems.clone(), "has no CPU request");
    assert_finds(problems, "sets spec.replicas");
}

#[test]
fn broken_compose_is_caught() {
    let text = r#"
services:
  c1:
    command: [apitap-coordinator]
    environment: { APITAP_NODE_ID: "1", APITAP_ADVERTISE_ADDR: "c1:7400", APITAP_INIT: "1" }
    volumes: [c1-data:/var/lib/apitap, ./local:/x]
  c2:
    command: [apitap-coordinator]
    environment: [APITAP_NODE_ID=1, "APITAP_ADVERTISE_ADDR=0.0.0.0:7400"]
    healthcheck: { disable: true }
  join:
    entrypoint: [/bin/sh, -c]
    command: ["apitapctl cluster add 3 c3:7400"]
    depends_on: { c2: { condition: service_healthy }, c9: { condition: service_started } }
  worker:
    command: [apitap-worker]
    environment: { APITAP_COORDINATOR: "c2:7400" }
volumes:
  other:
"#;
    let problems = check_compose(&docs_of(text).remove(0).value);
    assert_finds(problems.clone(), "volume c1-data is not defined");
    assert!(
        !problems.iter().any(|p| p.contains("./local")),
        "a bind mount is not a named volume: {problems:#?}"
    );
    assert_finds(
        problems.clone(),
        "APITAP_NODE_ID Some(\"1\") is missing, zero or repeated",
    );
    assert_finds(
        problems.clone(),
        "APITAP_ADVERTISE_ADDR Some(\"0.0.0.0:7400\")",
    );
    assert_finds(problems.clone(), "APITAP_INIT=1 is rejected");
    assert_finds(problems.clone(), "bootstrap the cluster; exactly one");
    assert_finds(problems.clone(), "depends on c9, which is not a service");
    assert_finds(
        problems.clone(),
        "waits for c2 to be healthy, which has no healthcheck",
    );
    assert_finds(
        problems.clone(),
        "stop_grace_period 10s is not longer than the drain timeout 30s",
    );
    assert_finds(problems, "APITAP_COORDINATOR does not list c1:7400");
}

#[test]
fn kustomization_drift_is_caught() {
    let kustomization = docs_of("resources: [a.yaml, gone.yaml]").remove(0).value;
    let files = BTreeSet::from(["a.yaml".to_string(), "new.yaml".to_string()]);
    let problems = check_kustomization(&kustomization, &files);
    assert_finds(problems.clone(), "does not list new.yaml");
    assert_finds(problems, "lists gone.yaml, which does not exist");
}

#[test]
fn durations_parse_like_the_binaries_flags() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("soon").is_err());
}
