//! A panic in request handling becomes a 500 `internal` in the contract's shape. Without
//! this, a panic in an extractor or a handler unwinds through the connection's task: actix
//! drops the connection with no answer (the worker thread goes on; the release profile
//! unwinds too, `panic = "abort"` is not set). Wrapped around the whole app
//! ([`catch_panics`]), so every route and the default service are covered. A panic inside an
//! actor is the directory's to handle (`chorus_actors::actor::directory`): it answers
//! `Internal`, which is the same 500.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use futures_util::FutureExt;

use crate::error::Error;

/// Calls the app for `req`; a panic while building or running the answer is logged and
/// answered 500 `internal`. The answer is the error (the app's error mapping in
/// `crate::serve` turns it into the contract's shape): no clone of the request may be held
/// across the call, since routing needs the request to itself.
pub fn catch_panics<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let method = req.method().clone();
    let path = req.path().to_owned();
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| service.call(req)));
    async move {
        let outcome = match call {
            Ok(answer) => AssertUnwindSafe(answer).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        outcome.unwrap_or_else(|panic| {
            tracing::error!(
                %method,
                %path,
                panic = panic_message(panic.as_ref()),
                "request handler panicked; answered 500"
            );
            Err(Error::Internal("a request handler panicked".into()).into())
        })
    }
}

/// The text a panic was raised with, if it is text.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}
