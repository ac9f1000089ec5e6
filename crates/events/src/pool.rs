//! How a service's PostgreSQL pool hands out connections.
//!
//! sqlx checks every connection it hands out with a round trip to the server
//! (`test_before_acquire`). On the outbox path that is one more round trip
//! per transaction for the writer and for the inbox, about a fifth of all of
//! them, and each one two context switches. A connection used within the last
//! second is alive unless the server went away in that second, in which case
//! the transaction fails like any other that loses its server and the
//! connection is dropped. So only connections idle longer than that are
//! checked before they are handed out.

use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// Connections idle longer than this are checked before use.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options that check a connection only after it has been idle for
/// [`CHECK_AFTER_IDLE`]; set the size and timeouts on them.
pub fn options() -> PgPoolOptions {
    checking_after_idle(CHECK_AFTER_IDLE)
}

/// Pool options that check a connection only after it has been idle for `idle`.
fn checking_after_idle(idle: Duration) -> PgPoolOptions {
    PgPoolOptions::new().test_before_acquire(false).before_acquire(move |connection, metadata| {
        Box::pin(async move {
            if metadata.idle_for >= idle {
                connection.ping().await?;
            }
            Ok(true)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;
    use testkit::TestDb;

    async fn backend_pid(pool: &PgPool) -> anyhow::Result<i32> {
        Ok(sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(pool).await?)
    }

    /// A one-connection pool whose connection was just used and whose
    /// server process was then terminated, and that process's id.
    async fn pool_whose_connection_died(db: &TestDb, check_after_idle: Duration) -> anyhow::Result<(PgPool, i32)> {
        let pool = checking_after_idle(check_after_idle).max_connections(1).connect_with(db.options.clone()).await?;
        let doomed = backend_pid(&pool).await?;
        let terminated: bool =
            sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)").bind(doomed).fetch_one(&db.pool).await?;
        anyhow::ensure!(terminated, "backend {doomed} was not terminated");
        Ok((pool, doomed))
    }

    #[tokio::test]
    async fn a_long_idle_connection_that_died_is_replaced_before_use() -> anyhow::Result<()> {
        let db = TestDb::new().await?;
        let idle = Duration::from_millis(200);
        let (pool, doomed) = pool_whose_connection_died(&db, idle).await?;
        tokio::time::sleep(idle + Duration::from_millis(100)).await;

        let replacement = backend_pid(&pool).await?;
        assert_ne!(replacement, doomed, "the query ran on a new connection");
        Ok(())
    }

    #[tokio::test]
    async fn a_recently_used_connection_is_handed_out_unchecked_and_dropped_once_it_fails() -> anyhow::Result<()> {
        let db = TestDb::new().await?;
        // However slow the machine, the connection is "recently used".
        let (pool, doomed) = pool_whose_connection_died(&db, Duration::from_secs(3600)).await?;

        // Used recently, the connection is not checked before use: the first
        // query fails on it, unless the client has already seen the server
        // close the socket (a loaded machine gives it time to), in which case
        // it runs on a new connection. Either way it never runs on the dead one.
        if let Ok(pid) = backend_pid(&pool).await {
            assert_ne!(pid, doomed, "a query ran on a terminated backend");
        }
        let replacement = backend_pid(&pool).await?;
        assert_ne!(replacement, doomed, "the failed connection left the pool");
        Ok(())
    }
}
