//! `RequestBuilderExt`: propagation on a `reqwest` request (feature `propagation-reqwest`).

use http::HeaderMap;

use super::inject::inject;

/// Adds the current run's context to a `reqwest` request.
///
/// ```no_run
/// use prefactor::propagation::RequestBuilderExt;
///
/// #[prefactor::span(schema = "propagation:forecast", skip(http))]
/// async fn forecast(http: &reqwest::Client, city: &str) -> Result<String, reqwest::Error> {
///     http.get(format!("http://127.0.0.1:8081/forecast/{city}"))
///         .with_prefactor_context() // the tool service's spans join this run, under this span
///         .send()
///         .await?
///         .text()
///         .await
/// }
/// ```
pub trait RequestBuilderExt {
    /// Sets the propagation headers ([`inject`](super::inject)) of the context current
    /// now, where the request is built (not where it is sent): outside a run it adds
    /// nothing. Headers of the same names set earlier on this builder are replaced.
    #[must_use]
    fn with_prefactor_context(self) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_prefactor_context(self) -> Self {
        let mut headers = HeaderMap::new();
        if inject(&mut headers) { self.headers(headers) } else { self }
    }
}
