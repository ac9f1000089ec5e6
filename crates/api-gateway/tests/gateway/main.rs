//! Black-box tests of the gateway on port 0, in front of small test servers
//! and the real services.

mod admission;
mod auth;
mod connections;
mod console;
mod documents;
mod failures;
mod helpers;
mod operator;
mod platform;
mod rate_limits;
mod routing;
mod streaming;
