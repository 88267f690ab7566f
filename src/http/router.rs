//! The one way a route is registered: [`Router::route`] adds it to actix and writes it into
//! the route table, which the OpenAPI test compares with `/openapi.json`
//! ([`super::openapi`]), so a route registered without a documented operation fails the
//! tests.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};

/// One registered route: its method and its full path in OpenAPI's spelling
/// (`/v1/groups/{gid}`, as actix spells it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: Method,
    pub path: String,
}

/// Registers routes under a scope's `prefix` and records each in the route table.
pub struct Router<'a> {
    cfg: &'a mut web::ServiceConfig,
    prefix: &'static str,
    table: &'a mut Vec<Endpoint>,
}

impl<'a> Router<'a> {
    pub fn new(
        cfg: &'a mut web::ServiceConfig,
        prefix: &'static str,
        table: &'a mut Vec<Endpoint>,
    ) -> Self {
        Router { cfg, prefix, table }
    }

    /// `method path` (relative to the scope) answered by `handler`.
    pub fn route<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.cfg
            .route(path, web::method(method.clone()).to(handler));
        self.table.push(Endpoint {
            method,
            path: format!("{}{path}", self.prefix),
        });
        self
    }
}

/// `Router::get(path, handler)` and its siblings: `route` with the method named.
macro_rules! shorthand {
    ($($name:ident => $method:ident),* $(,)?) => {
        impl Router<'_> {
            $(
                pub fn $name<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
                where
                    F: Handler<Args>,
                    Args: FromRequest + 'static,
                    F::Output: Responder + 'static,
                {
                    self.route(Method::$method, path, handler)
                }
            )*
        }
    };
}

shorthand!(get => GET, post => POST, patch => PATCH, delete => DELETE);
