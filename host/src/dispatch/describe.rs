//! What the host asks a component about itself, through a fresh instance
//! like any request: `GET /openapi.json`, each live component asked once
//! what it serves, the answers merged ([`crate::openapi`]); and before a
//! changed SQL route goes live, whether the server types its query
//! ([`SqlCheck`]).

use std::convert::Infallible;
use std::sync::{Arc, Weak};

use futures::future::BoxFuture;

use http_body_util::BodyExt;
use hyper::header::HeaderValue;

use super::{Dispatcher, guest_view};
use crate::deploy::routes::{Deployment, Route};
use crate::deploy::{CheckOutcome, RouteCheck};
use crate::openapi;
use crate::respond::{self, ResponseBody};

impl Dispatcher {
    /// `GET /openapi.json`: every live route's description, merged.
    pub(super) async fn openapi(&self) -> hyper::Response<ResponseBody> {
        let routes: Vec<Arc<Route>> = self.deployer.routes().routes().to_vec();
        let deployments: Vec<Arc<Deployment>> =
            routes.iter().map(|route| route.current()).collect();
        let descriptions = futures::future::join_all(
            routes
                .iter()
                .zip(&deployments)
                .map(|(route, deployment)| self.description(route, deployment)),
        )
        .await;
        let docs: Vec<openapi::RouteDoc<'_>> = routes
            .iter()
            .zip(&deployments)
            .zip(&descriptions)
            .map(|((route, deployment), described)| openapi::RouteDoc {
                name: route.name(),
                prefix: route.prefix(),
                version: deployment.version,
                sha256: deployment.component.sha256(),
                access: route.access().rules(),
                described: described.as_deref(),
            })
            .collect();
        let mut response = respond::json(200, &openapi::merge(&docs));
        response.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        response
    }

    /// What `deployment`'s component says about itself, asked once: a
    /// component that answers its well-known path with anything but an
    /// OpenAPI 3 document describes nothing. A busy or failing instance is
    /// asked again next time.
    async fn description(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
    ) -> Option<Arc<serde_json::Value>> {
        let described = deployment
            .api_description
            .get_or_try_init(|| self.ask_description(route, deployment))
            .await;
        match described {
            Ok(described) => described.clone(),
            Err(why) => {
                tracing::warn!(
                    route = route.name(),
                    version = deployment.version,
                    why,
                    "no API description this time"
                );
                None
            }
        }
    }

    async fn ask_description(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
    ) -> Result<Option<Arc<serde_json::Value>>, &'static str> {
        let (status, body) = self
            .ask(
                route,
                deployment,
                openapi::COMPONENT_DOC_PATH,
                openapi::MAX_COMPONENT_DOC,
            )
            .await?;
        if status != hyper::StatusCode::OK {
            tracing::debug!(
                route = route.name(),
                status = status.as_u16(),
                "the component does not describe its routes"
            );
            return Ok(None);
        }
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(doc) if openapi::is_openapi3(&doc) => Ok(Some(Arc::new(doc))),
            _ => {
                tracing::warn!(
                    route = route.name(),
                    path = openapi::COMPONENT_DOC_PATH,
                    "the component answered with something that is not an OpenAPI 3 document; ignored"
                );
                Ok(None)
            }
        }
    }

    /// `GET path` (below the route's prefix) asked of `deployment` through a
    /// fresh instance like any request's: the status and at most `limit`
    /// bytes of body, whole within the route's timeout.
    async fn ask(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
        path: &str,
        limit: usize,
    ) -> Result<(hyper::StatusCode, bytes::Bytes), &'static str> {
        let Ok(Ok(permit)) = tokio::time::timeout(
            self.config.queue_timeout,
            self.in_flight.clone().acquire_owned(),
        )
        .await
        else {
            return Err("every instance slot is busy");
        };
        let slot = self.deployer.metrics().slot(permit);
        let request_id = self.request_ids.next();
        let path = format!("{}{path}", route.prefix().trim_end_matches('/'));
        let mut request = hyper::Request::get(&path)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            )
            .map_err(|_| "the route's prefix is no valid path")?;
        let headers = request.headers_mut();
        headers.insert(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        guest_view::prepare(
            headers,
            route,
            &path,
            &request_id,
            None,
            // The host's own request: no client sent it a key.
            &crate::access::KeyStore::default(),
            &crate::access::Admission::default(),
        );
        let response = self
            .invoke(route, deployment, request, &request_id, slot)
            .await;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), limit);
        match tokio::time::timeout(route.limits().timeout, body.collect()).await {
            Ok(Ok(body)) => Ok((status, body.to_bytes())),
            _ => Err("the component's answer did not arrive whole"),
        }
    }

    /// Ask a SQL route's component whether the server types its query
    /// ([`wasmhouse_sql_route::CHECK_PATH`]): what [`SqlCheck`] reports.
    async fn check_sql(&self, route: &Route) -> CheckOutcome {
        let deployment = route.current();
        let asked = self
            .ask(
                route,
                &deployment,
                wasmhouse_sql_route::CHECK_PATH,
                MAX_CHECK_ANSWER,
            )
            .await;
        let (status, body) = match asked {
            Ok(answer) => answer,
            Err(why) => return CheckOutcome::NotChecked(why.to_owned()),
        };
        if status == hyper::StatusCode::OK {
            return CheckOutcome::Passed;
        }
        let why = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        match status.as_u16() {
            // ClickHouse down, or the check ran out of time: nobody said no.
            503 | 504 => CheckOutcome::NotChecked(why),
            _ => CheckOutcome::Failed(why),
        }
    }
}

/// The most of a SQL check's answer read: a column list, or an error.
const MAX_CHECK_ANSWER: usize = 64 << 10;

/// The deployer's [`RouteCheck`]: SQL routes asked through the dispatcher
/// (held weakly: the dispatcher owns the deployer).
pub(crate) struct SqlCheck(pub(crate) Weak<Dispatcher>);

impl RouteCheck for SqlCheck {
    fn check<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, CheckOutcome> {
        Box::pin(async move {
            match self.0.upgrade() {
                Some(dispatcher) => dispatcher.check_sql(route).await,
                None => CheckOutcome::NotChecked("the host is shutting down".to_owned()),
            }
        })
    }
}
