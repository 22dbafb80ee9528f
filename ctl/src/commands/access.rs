//! `token create|list|revoke`, `secrets rotate-key` and `audit`.

use std::time::Duration;

use apitap_proto::v1::{
    AuditEntry, CreateTokenRequest, ListAuditRequest, ListTokensRequest, RevokeTokenRequest,
    RotateSecretsKeyRequest, TokenInfo,
};

use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, table_of};

fn print_tokens(tokens: &[TokenInfo]) {
    let now = apitap_common::time::now_ms();
    table_of(
        &[
            "ID",
            "NAME",
            "ROLE",
            "NAMESPACES",
            "AGE",
            "EXPIRES",
            "CREATED BY",
        ],
        tokens,
        |t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.role.clone(),
                t.namespaces.join(","),
                output::age(now.saturating_sub(t.created_at_ms)),
                match (t.expired, t.expires_at_ms) {
                    (true, _) => "expired".into(),
                    (false, 0) => "never".into(),
                    (false, at) => format!("in {}", output::age(at.saturating_sub(now))),
                },
                t.created_by.clone(),
            ]
        },
    );
}

pub async fn create(
    client: &mut Client,
    format: Format,
    name: String,
    role: String,
    namespaces: Vec<String>,
    expires_in: Option<Duration>,
) -> anyhow::Result<i32> {
    let req = CreateTokenRequest {
        name,
        role,
        namespaces,
        ttl_seconds: expires_in.map_or(0, |d| d.as_secs().max(1)),
    };
    let resp = client
        .access(|mut c| {
            let req = req.clone();
            async move { c.create_token(req).await }
        })
        .await?;
    if !output::structured(format, &resp) {
        if let Some(info) = &resp.info {
            print_tokens(std::slice::from_ref(info));
        }
        outln!();
        outln!("token (shown once; store it now, e.g. in APITAP_TOKEN):");
        outln!("{}", resp.token);
    }
    Ok(0)
}

pub async fn list(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let resp = client
        .access(|mut c| async move { c.list_tokens(ListTokensRequest {}).await })
        .await?;
    if !output::structured(format, &resp.tokens) {
        print_tokens(&resp.tokens);
    }
    Ok(0)
}

pub async fn revoke(client: &mut Client, format: Format, id: String) -> anyhow::Result<i32> {
    let info = client
        .access(|mut c| {
            let id = id.clone();
            async move { c.revoke_token(RevokeTokenRequest { id }).await }
        })
        .await?;
    if !output::structured(format, &info) {
        outln!("token {} ({}) revoked", info.id, info.name);
    }
    Ok(0)
}

fn print_audit(entries: &[AuditEntry]) {
    let now = apitap_common::time::now_ms();
    table_of(
        &["SEQ", "WHEN", "WHO", "ACTION", "OBJECT", "OUTCOME"],
        entries,
        |e| {
            vec![
                e.seq.to_string(),
                format!("{} ago", output::age(now.saturating_sub(e.at_ms))),
                e.actor.clone(),
                e.action.clone(),
                e.object.clone(),
                e.outcome.clone(),
            ]
        },
    );
}

pub async fn audit(
    client: &mut Client,
    format: Format,
    since: Option<Duration>,
    limit: u32,
) -> anyhow::Result<i32> {
    let since_ms = since.map_or(0, |d| {
        apitap_common::time::now_ms().saturating_sub(d.as_millis() as u64)
    });
    let resp = client
        .access(|mut c| async move { c.list_audit(ListAuditRequest { since_ms, limit }).await })
        .await?;
    if !output::structured(format, &resp.entries) {
        print_audit(&resp.entries);
    }
    Ok(0)
}

pub async fn rotate_key(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let resp = client
        .access(|mut c| async move { c.rotate_secrets_key(RotateSecretsKeyRequest {}).await })
        .await?;
    if !output::structured(format, &resp) {
        outln!(
            "secrets sealed under key {}: {} pipelines and runs resealed, {} already current",
            resp.key_id,
            resp.resealed,
            resp.current
        );
    }
    Ok(0)
}
