//! The HTTP client of the OTLP exporter: reqwest 0.12's blocking client, made on the batch
//! processor's thread at its first export.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Most bytes of an export response read (a collector answers with a small protobuf).
const MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// Sends export requests from the thread that calls it (the SDK's batch processor runs its
/// exporter on a thread of its own, under a plain executor, not tokio).
///
/// The reqwest client is made on first use, on that thread: a blocking reqwest client must not
/// be made or dropped inside an async runtime, and the pipeline is built in one.
#[derive(Debug)]
pub(crate) struct BlockingHttp {
    timeout: Duration,
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
}

impl BlockingHttp {
    pub(crate) fn new(timeout: Duration) -> BlockingHttp {
        BlockingHttp { timeout, client: OnceLock::new() }
    }

    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        use std::io::Read;
        let client = self
            .client
            .get_or_init(|| {
                reqwest::blocking::Client::builder().timeout(self.timeout).build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| HttpError::from(e.clone()))?;
        let (parts, body) = request.into_parts();
        let mut response =
            client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body.to_vec()).send()?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        response.by_ref().take(MAX_RESPONSE_BYTES).read_to_end(&mut body)?;
        let mut answer = Response::builder().status(status).body(Bytes::from(body))?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

impl HttpClient for BlockingHttp {
    // `opentelemetry_http::HttpClient` is an `async_trait`: this is its expanded signature.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.send(request) })
    }
}
