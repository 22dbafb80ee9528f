//! [`Ctx`]: what every handler of the JSON API and the console starts from (this node, the
//! admin server's settings and the request), taken as one extractor so that each handler
//! only names what is its own (a path, a query).

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use tonic::Status;

use super::{auth, reply, Settings};
use crate::auth::Caller;
use crate::node::Node;

/// A request with the node and settings that serve it.
pub struct Ctx {
    pub node: web::Data<Node>,
    pub settings: web::Data<Settings>,
    pub req: HttpRequest,
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let node = req.app_data::<web::Data<Node>>().cloned();
        let settings = req.app_data::<web::Data<Settings>>().cloned();
        ready(match (node, settings) {
            (Some(node), Some(settings)) => Ok(Ctx {
                node,
                settings,
                req: req.clone(),
            }),
            _ => Err(actix_web::error::ErrorInternalServerError(
                "the admin server was started without its node or settings",
            )),
        })
    }
}

impl Ctx {
    /// The caller, once it may do what `rpc` (a `ControlService` method) needs.
    pub fn authorize(&self, rpc: &str) -> Result<(Caller, auth::Via), Status> {
        auth::authorize(&self.node, &self.settings, &self.req, rpc)
    }

    /// Answers a read for `rpc`'s role with what `view` makes of the caller.
    pub fn read<T: Serialize>(
        &self,
        rpc: &str,
        view: impl FnOnce(&Caller) -> Result<T, Status>,
    ) -> HttpResponse {
        match self.authorize(rpc).and_then(|(caller, _)| view(&caller)) {
            Ok(body) => HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(body),
            Err(status) => reply::refused(&self.node, &status),
        }
    }
}
