//! Scripts sent by their SHA1 to a Redis that may not know them.

use crate::helpers::TestResult;
use events::lua::Script;
use testkit::RedisServer;

#[tokio::test]
async fn a_script_redis_forgot_is_sent_again_and_known_afterwards() -> TestResult {
    // Its own server: `SCRIPT FLUSH` forgets every script on it.
    let server = RedisServer::start()?;
    let mut connection = redis::Client::open(server.url())?.get_multiplexed_async_connection().await?;
    let script = Script::new("return tonumber(ARGV[1]) + #KEYS");
    let add = |command: &mut redis::Cmd| {
        command.arg(2).arg("a").arg("b").arg(40);
    };

    assert_eq!(script.run::<i64>(&mut connection, add).await?, 42, "unknown to a fresh server");
    let known: Vec<bool> = redis::cmd("SCRIPT").arg("EXISTS").arg(script.sha()).query_async(&mut connection).await?;
    assert_eq!(known, [true], "the source taught Redis the script");
    assert_eq!(script.run::<i64>(&mut connection, add).await?, 42, "known");

    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut connection).await?;
    assert_eq!(script.run::<i64>(&mut connection, add).await?, 42, "forgotten by SCRIPT FLUSH");
    Ok(())
}
