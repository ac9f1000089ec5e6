//! Telling an outage from a refusal.
//!
//! When PostgreSQL or Redis is unreachable, overloaded or busy, trying again
//! later succeeds: such an error says nothing about the event being handled or
//! the row being published. Everything else (a constraint violated, a payload
//! the handler cannot make sense of) will fail the same way every time. The
//! consumer retries the first kind without limit and dead-letters only the
//! second ([`crate::consumer::HandlerError`]); services answer the first kind
//! with 503.

/// SQLSTATEs that a later attempt can get past: the connection failed or the
/// server is shutting down (class 08, 57P01–57P03), a statement or lock wait
/// timed out or was cancelled (57014, 55P03), the transaction lost a race
/// (40001 serialization failure, 40P01 deadlock), or the server is out of
/// connections or resources (class 53).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01")
}

/// Whether `error` is PostgreSQL being unreachable, busy or timing out, which
/// a later attempt can get past, rather than a refusal of what was asked.
pub fn is_transient_database(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// Whether `error` is Redis being unreachable, loading, read-only, out of
/// memory or busy, which a later attempt can get past.
pub fn is_transient_redis(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || matches!(
            error.code(),
            Some("LOADING" | "READONLY" | "MASTERDOWN" | "TRYAGAIN" | "OOM" | "BUSY" | "MISCONF" | "CLUSTERDOWN")
        )
}

/// Whether anything in `error`'s chain of causes is a transient database or
/// Redis failure: how an error that went through `anyhow` is classified.
pub fn is_transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(database) = current.downcast_ref::<sqlx::Error>()
            && is_transient_database(database)
        {
            return true;
        }
        if let Some(redis) = current.downcast_ref::<redis::RedisError>()
            && is_transient_redis(redis)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_timeouts_and_lost_races_are_transient_and_refusals_are_not() {
        for code in ["08006", "08001", "57P01", "57014", "55P03", "40001", "40P01", "53300"] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "23514", "22P02", "42P01", "42703"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
        assert!(is_transient_database(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient_database(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn a_transient_failure_is_found_behind_the_context_anyhow_adds() {
        let wrapped = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("applying the event");
        assert!(is_transient(wrapped.as_ref()));
        let refused = anyhow::anyhow!("the payload names no menu").context("applying the event");
        assert!(!is_transient(refused.as_ref()));
    }

    #[test]
    fn redis_refusing_writes_for_now_is_transient_and_a_wrong_type_is_not() {
        let refusal = |code: &str| redis::make_extension_error(code.to_owned(), None);
        for code in ["OOM", "MISCONF", "READONLY", "LOADING", "BUSY"] {
            assert!(is_transient_redis(&refusal(code)), "{code}");
        }
        assert!(!is_transient_redis(&refusal("WRONGTYPE")));
        let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_transient_redis(&refused));
    }
}
