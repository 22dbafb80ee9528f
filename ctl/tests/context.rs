//! The context file as a user meets it: flags and environment win over the context, the
//! context over the defaults, `use-context` switches, and a wrong name says which exist.

use std::path::Path;
use std::process::{Command, Output};

fn ctl(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apitapctl"))
        .env("APITAP_CONFIG", config)
        .env_remove("APITAP_COORDINATOR")
        .env_remove("APITAP_NAMESPACE")
        .env_remove("APITAP_TOKEN")
        .env_remove("APITAP_CONTEXT")
        .args(args)
        .output()
        .expect("apitapctl runs")
}

fn view(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "config", "view"]);
    let out = ctl(config, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn flags_win_over_the_context_and_the_context_over_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "current-context: staging\ncontexts:\n  - name: staging\n    coordinators: [10.0.0.1:7400]\n    \
         namespace: orders\n    token-file: staging.token\n  - name: prod\n    coordinators: [10.9.9.9:7400]\n",
    )
    .expect("write");

    let v = view(&config, &[]);
    assert_eq!(v["context"], "staging");
    assert_eq!(v["coordinators"][0], "10.0.0.1:7400");
    assert_eq!(v["coordinators_from"], "context");
    assert_eq!(v["namespace"], "orders");
    let token_file = dir.path().join("staging.token");
    assert_eq!(v["token_file"], token_file.display().to_string());

    let v = view(&config, &["-n", "billing", "--coordinator", "h:1"]);
    assert_eq!(v["namespace"], "billing");
    assert_eq!(v["namespace_from"], "flag-or-environment");
    assert_eq!(v["coordinators"][0], "h:1");

    let v = view(&config, &["--context", "prod"]);
    assert_eq!(v["coordinators"][0], "10.9.9.9:7400");
    assert_eq!(v["namespace"], "default");
    assert_eq!(v["namespace_from"], "default");

    let out = ctl(&config, &["config", "use-context", "prod"]);
    assert!(out.status.success());
    assert_eq!(view(&config, &[])["context"], "prod");

    let out = ctl(&config, &["--context", "qa", "get", "runs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no context \"qa\"") && err.contains("staging, prod"),
        "{err}"
    );
}
