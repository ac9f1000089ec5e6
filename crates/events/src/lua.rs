//! Lua scripts run on Redis by their SHA1.
//!
//! A [`Script`] is sent with `EVALSHA`, so a call carries the script's
//! 40-character digest rather than its source. Redis forgets scripts when it
//! restarts or on `SCRIPT FLUSH`; the call that meets the `NOSCRIPT` answer
//! then sends the source once with `EVAL`, which also teaches it to Redis
//! again for the calls after it.

use redis::aio::MultiplexedConnection;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind};
use sha1::{Digest, Sha1};

/// A Lua script and its SHA1.
#[derive(Debug, Clone)]
pub struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    /// The script with `source`, its digest computed here.
    pub fn new(source: &'static str) -> Self {
        let sha = Sha1::digest(source.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
        Self { source, sha }
    }

    /// The script's SHA1, in hexadecimal as Redis writes it.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    /// Runs the script on `connection`. `arguments` appends what follows the
    /// script in the command (the number of keys, the keys, then the other
    /// arguments); it is called a second time when Redis has to be sent the
    /// source.
    ///
    /// # Errors
    /// Redis refused the call, the script raised an error, or the connection failed.
    pub async fn run<T: FromRedisValue>(
        &self,
        connection: &mut MultiplexedConnection,
        arguments: impl Fn(&mut Cmd),
    ) -> RedisResult<T> {
        let call = |verb: &str, script: &str| {
            let mut command = redis::cmd(verb);
            command.arg(script);
            arguments(&mut command);
            command
        };
        match call("EVALSHA", &self.sha).query_async(connection).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                call("EVAL", self.source).query_async(connection).await
            }
            answered => answered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_one_redis_computes() {
        // `redis-cli SCRIPT LOAD "return 1"`
        assert_eq!(Script::new("return 1").sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
