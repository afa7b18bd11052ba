//! `PropagationLayer`: a tower layer (axum, tonic, hyper services) that runs each request
//! inside the run its caller sent (feature `propagation-tower`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use prefactor_runtime::{FutureExt, Instrumented};
use tower_layer::Layer;
use tower_service::Service;

use super::extract::extract;

/// Runs every request that carries a Prefactor context ([`extract`](super::extract)) inside
/// it: the handler's `#[span]`s join the caller's run as children of the caller's span, across
/// every `.await` of the handler (the context is entered on each poll, as
/// [`Instrumented`] does). A request without one (or with a malformed one) runs as it would
/// without the layer.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use prefactor::propagation::PropagationLayer;
///
/// #[prefactor::span(schema = "propagation:lookup")]
/// async fn forecast(city: String) -> String {
///     format!("sunny in {city}")
/// }
///
/// # async fn serve() -> std::io::Result<()> {
/// let app = Router::new()
///     .route("/forecast/{city}", get(|axum::extract::Path(city): axum::extract::Path<String>| forecast(city)))
///     .layer(PropagationLayer::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagationLayer {
    _private: (),
}

impl PropagationLayer {
    /// The layer. Spans go through the installed client (`prefactor::init` in the tool
    /// service, as in an agent), looked up per request: a request arriving before it is
    /// installed runs outside any run.
    pub fn new() -> PropagationLayer {
        PropagationLayer { _private: () }
    }
}

impl<S> Layer<S> for PropagationLayer {
    type Service = PropagationService<S>;

    fn layer(&self, inner: S) -> PropagationService<S> {
        PropagationService { inner }
    }
}

/// The service [`PropagationLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct PropagationService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for PropagationService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = PropagationFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match extract(request.headers()).and_then(|remote| remote.installed_context()) {
            // `call` itself may open spans (work done before the future is returned).
            Some(context) => {
                let inner = context.in_scope(|| self.inner.call(request));
                PropagationFuture { state: State::Joined { inner: inner.in_context(context) } }
            }
            None => PropagationFuture { state: State::Plain { inner: self.inner.call(request) } },
        }
    }
}

pin_project! {
    /// The future of a [`PropagationService`]: the inner service's, inside the caller's
    /// context when the request carried one.
    pub struct PropagationFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = Projected]
    enum State<F> {
        // Polled inside the caller's run.
        Joined { #[pin] inner: Instrumented<F> },
        // No context came with the request.
        Plain { #[pin] inner: F },
    }
}

impl<F: Future> Future for PropagationFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        match self.project().state.project() {
            Projected::Joined { inner } => inner.poll(cx),
            Projected::Plain { inner } => inner.poll(cx),
        }
    }
}
