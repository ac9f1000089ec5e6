//! `platform-ctl sagas`: the operators' view of the order sagas, through the
//! gateway's `/api/v1/sagas` with a `platform:operate` token.

use crate::auth::{self, TokenRequest};
use service_kit::auth::Scope;
use std::io::Write;
use std::time::Duration;

/// Where the gateway is and who is asking.
#[derive(Debug, Clone, clap::Args)]
pub struct Operator {
    /// The gateway's base URL.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// A staff token with `platform:operate`; default one minted from the key pair of `auth init`.
    #[arg(long, env = "STAFF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What to do with the sagas.
#[derive(Debug, clap::Subcommand)]
pub enum SagaCommand {
    /// Lists sagas, newest first, one per line: id, type, status, step, subject, reason.
    List {
        /// Only those in this status: running, compensating, completed, failed, stuck.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u16,
    },
    /// Shows one saga with its history, as JSON.
    Show {
        /// The saga's id.
        id: uuid::Uuid,
    },
    /// Sends a stuck saga's current step or compensation again.
    Retry {
        /// The saga's id.
        id: uuid::Uuid,
    },
    /// Makes a running saga compensate now.
    Abort {
        /// The saga's id.
        id: uuid::Uuid,
    },
}

/// Runs `command` against the gateway of `operator`, writing to `out`.
///
/// # Errors
/// No token could be had, the gateway is unreachable, or it answered with a problem.
pub async fn run(operator: &Operator, command: SagaCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let token = match &operator.token {
        Some(token) => token.clone(),
        None => {
            let request = TokenRequest {
                subject: "platform-ctl".to_owned(),
                scopes: vec![Scope::PlatformOperate],
                ttl: Duration::from_secs(300),
                issuer: service_kit::auth::PLATFORM.to_owned(),
                audience: service_kit::auth::PLATFORM.to_owned(),
            };
            auth::token(&auth::key_dir(None)?, &request)?
        }
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let base = operator.gateway.trim_end_matches('/');
    let request = match &command {
        SagaCommand::List { status, limit } => {
            let filter = status.as_ref().map(|status| format!("&status={status}")).unwrap_or_default();
            client.get(format!("{base}/api/v1/sagas?limit={limit}{filter}"))
        }
        SagaCommand::Show { id } => client.get(format!("{base}/api/v1/sagas/{id}")),
        SagaCommand::Retry { id } => client.post(format!("{base}/api/v1/sagas/{id}/retry")),
        SagaCommand::Abort { id } => client.post(format!("{base}/api/v1/sagas/{id}/abort")),
    };
    let response = request.bearer_auth(token).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        anyhow::bail!("the gateway answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"));
    }
    match command {
        SagaCommand::List { .. } => {
            for saga in body["sagas"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{}\t{}\t{}\tstep {}\t{}\t{}",
                    saga["id"].as_str().unwrap_or_default(),
                    saga["saga_type"].as_str().unwrap_or_default(),
                    saga["status"].as_str().unwrap_or_default(),
                    saga["current_step"],
                    saga["subject"].as_str().unwrap_or_default(),
                    saga["stuck_reason"].as_str().or(saga["reason"].as_str()).unwrap_or_default(),
                )?;
            }
            writeln!(out, "{} of {}", body["sagas"].as_array().map_or(0, Vec::len), body["total"])?;
        }
        _ => writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?,
    }
    Ok(())
}
