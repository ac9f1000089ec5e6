//! [`Api`]: a JSON client of one service under test.

use reqwest::{Client, Response};
use serde_json::Value;

/// A JSON client of the service at `base` (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct Api {
    /// Scheme, host and port.
    pub base: String,
    /// The HTTP client (keeps connections alive).
    pub client: Client,
}

impl Api {
    /// A client of the service listening on `port` of this machine.
    pub fn on_port(port: u16) -> Self {
        Self { base: format!("http://127.0.0.1:{port}"), client: Client::new() }
    }

    /// The same service, every request sending `Authorization: Bearer <token>`
    /// (requests made with `client` too).
    ///
    /// # Errors
    /// The token is not a valid header value, or the client cannot be built.
    pub fn with_token(&self, token: &str) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").try_into()?);
        let client = Client::builder().default_headers(headers).build()?;
        Ok(Self { base: self.base.clone(), client })
    }

    /// The same service as a staff member holding every scope
    /// ([`crate::auth::staff_token`]).
    ///
    /// # Errors
    /// The token cannot be made.
    pub fn as_staff(&self) -> anyhow::Result<Self> {
        self.with_token(&crate::auth::staff_token()?)
    }

    /// The same service, sending no token.
    pub fn anonymous(&self) -> Self {
        Self { base: self.base.clone(), client: Client::new() }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`.
    ///
    /// # Errors
    /// The request could not be sent.
    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        Ok(self.client.get(self.url(path)).send().await?)
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// The request could not be sent.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        Ok(self.client.post(self.url(path)).json(body).send().await?)
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    /// The request could not be sent.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        Ok(self.client.put(self.url(path)).json(body).send().await?)
    }

    /// `PATCH path` with a JSON body.
    ///
    /// # Errors
    /// The request could not be sent.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        Ok(self.client.patch(self.url(path)).json(body).send().await?)
    }

    /// `PATCH path` without a body.
    ///
    /// # Errors
    /// The request could not be sent.
    pub async fn patch_empty(&self, path: &str) -> anyhow::Result<Response> {
        Ok(self.client.patch(self.url(path)).send().await?)
    }

    /// `GET path`, expecting 200 and a JSON body.
    ///
    /// # Errors
    /// The request failed or answered something else.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.get(path).await?;
        anyhow::ensure!(response.status() == 200, "GET {path} answered {}", response.status());
        Ok(response.json().await?)
    }
}

/// A service a test started; it stops when this is dropped.
#[derive(Debug)]
pub struct Running {
    /// A client of it.
    pub api: Api,
    cancel: tokio_util::sync::CancellationToken,
}

impl Running {
    /// Runs `run` on a task as the service listening on `port`; `run` gets
    /// the token that stops it.
    pub fn spawn<F>(port: u16, run: impl FnOnce(tokio_util::sync::CancellationToken) -> F) -> Self
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(run(cancel.clone()));
        Self { api: Api::on_port(port), cancel }
    }

    /// The same, its client sending a staff token with every scope ([`Api::as_staff`]).
    ///
    /// # Errors
    /// The token cannot be made.
    pub fn as_staff(mut self) -> anyhow::Result<Self> {
        self.api = self.api.as_staff()?;
        Ok(self)
    }
}

impl std::ops::Deref for Running {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
