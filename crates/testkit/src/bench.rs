//! Reference measurements the benchmarks compare against.

use anyhow::Context;
use std::io::Write;
use std::process::Command;

/// Runs `pgbench` for `seconds` with `clients` clients on `database`, each
/// transaction two single-row inserts (the physical floor of a command that
/// writes its state and an outbox row), and returns its transactions per second.
///
/// # Errors
/// `psql` or `pgbench` is missing or failed.
pub fn pgbench_two_inserts(database: &str, clients: usize, seconds: u32) -> anyhow::Result<f64> {
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql])
            .output()
            .context("running psql")
    };
    psql(
        "DROP TABLE IF EXISTS bench_state, bench_outbox;
         CREATE TABLE bench_state (id bigserial PRIMARY KEY, payload text NOT NULL);
         CREATE TABLE bench_outbox (id bigserial PRIMARY KEY, payload jsonb NOT NULL);",
    )?;
    let mut script = tempfile::NamedTempFile::new()?;
    script.write_all(
        b"BEGIN;\nINSERT INTO bench_state (payload) VALUES ('state');\n\
          INSERT INTO bench_outbox (payload) VALUES ('{\"event\": \"x\"}');\nCOMMIT;\n",
    )?;
    let output = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-c", &clients.to_string(), "-j", "2"])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(script.path())
        .arg(database)
        .output()
        .context("running pgbench")?;
    psql("DROP TABLE bench_state, bench_outbox;")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("reading pgbench's output: {text}"))
}
