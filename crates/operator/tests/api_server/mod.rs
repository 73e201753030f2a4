//! A mocked Kubernetes API server for reconcile tests, in the style of
//! kube-rs's controller-rs fixtures: kube's `Client::new` over a
//! `tower_test::mock` service, and an [`ApiServerVerifier`] that takes each
//! request the reconciler sends, in order, asserts what it is, and answers
//! it. A request the scenario does not expect (or one it expects that never
//! comes) fails the test.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flightdeck_operator::{
    metrics::Metrics,
    reconcile::{Context, Images},
};
use http::{Method, Request, Response, StatusCode};
use kube::{client::Body, Client};
use serde_json::{json, Value};
use tower_test::mock::{Handle, SendResponse};

/// How long the verifier waits for the reconciler's next request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Images the test context puts in stacks.
pub const GATEWAY_IMAGE: &str = "example.com/gateway:test";
pub const READER_IMAGE: &str = "example.com/reader:test";

/// A reconcile context whose client talks to the returned verifier.
pub fn context() -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let metrics = Metrics::new().expect("metrics register");
    let ctx = Context::new(
        client,
        Images {
            gateway: GATEWAY_IMAGE.into(),
            reader: READER_IMAGE.into(),
        },
        "test-replica".into(),
        metrics,
        Duration::from_secs(600),
    );
    (Arc::new(ctx), ApiServerVerifier { handle })
}

/// One request the reconciler sent.
pub struct Call {
    pub method: Method,
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub accept: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Call {
    fn describe(&self) -> String {
        format!("{} {} {:?}", self.method, self.path, self.query)
    }
}

/// Takes the reconciler's requests in order and answers them.
pub struct ApiServerVerifier {
    handle: Handle<Request<Body>, Response<Body>>,
}

impl ApiServerVerifier {
    /// The next request, which must be `method path`; with the means to
    /// answer it.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
    ) -> (Call, SendResponse<Response<Body>>) {
        let next = tokio::time::timeout(REQUEST_TIMEOUT, self.handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"));
        let (request, send) =
            next.unwrap_or_else(|| panic!("the client was dropped; expected {method} {path}"));
        let call = read(request).await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request {}",
            call.describe()
        );
        (call, send)
    }

    /// The next request must be a server-side apply of `path` by the
    /// operator's field manager; answered with the object as stored.
    pub async fn expect_apply(&mut self, path: &str) -> Call {
        let (call, send) = self.expect(Method::PATCH, path).await;
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some("flightdeck-operator"),
            "{}",
            call.describe()
        );
        assert_eq!(
            call.query.get("force").map(String::as_str),
            Some("true"),
            "{}",
            call.describe()
        );
        respond(send, StatusCode::OK, &call.body);
        call
    }

    /// The next request must list the metadata of `path`'s objects labelled
    /// for `stack`; answered with `items` (each `(name, controller uid)`).
    pub async fn expect_orphan_list(&mut self, path: &str, stack: &str, items: &[(&str, &str)]) {
        let (call, send) = self.expect(Method::GET, path).await;
        assert_eq!(
            call.query.get("labelSelector").map(String::as_str),
            Some(
                format!(
                    "flightdeck.dev/stack={stack},app.kubernetes.io/managed-by=flightdeck-operator"
                )
                .as_str()
            ),
            "{}",
            call.describe()
        );
        assert!(
            call.accept.contains("as=PartialObjectMetadataList"),
            "the sweep lists metadata only, got Accept {:?}",
            call.accept
        );
        let items: Vec<Value> = items
            .iter()
            .map(|(name, owner_uid)| {
                json!({
                    "apiVersion": "meta.k8s.io/v1",
                    "kind": "PartialObjectMetadata",
                    "metadata": {
                        "name": name,
                        "namespace": "llm",
                        "ownerReferences": [{
                            "apiVersion": "flightdeck.dev/v1alpha1",
                            "kind": "InferenceStack",
                            "name": stack,
                            "uid": owner_uid,
                            "controller": true,
                        }],
                    },
                })
            })
            .collect();
        respond(
            send,
            StatusCode::OK,
            &json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadataList",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }),
        );
    }

    /// The next request must publish an Event of `type_` with `reason`
    /// about the stack; returns it.
    pub async fn expect_event(&mut self, type_: &str, reason: &str) -> Value {
        let (call, send) = self
            .expect(Method::POST, "/apis/events.k8s.io/v1/namespaces/llm/events")
            .await;
        let event = call.body;
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str()),
            (Some(type_), Some(reason)),
            "event {event}"
        );
        assert_eq!(event["regarding"]["name"], "demo", "event {event}");
        respond(send, StatusCode::CREATED, &event);
        event
    }

    /// The next request must be the stack's status apply patch; returns the
    /// status it writes.
    pub async fn expect_status_patch(&mut self) -> Value {
        let (call, send) = self
            .expect(
                Method::PATCH,
                "/apis/flightdeck.dev/v1alpha1/namespaces/llm/inferencestacks/demo/status",
            )
            .await;
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some("flightdeck-operator")
        );
        assert_eq!(call.body["apiVersion"], "flightdeck.dev/v1alpha1");
        assert_eq!(call.body["kind"], "InferenceStack");
        let status = call.body["status"].clone();
        respond(
            send,
            StatusCode::OK,
            &json!({
                "apiVersion": "flightdeck.dev/v1alpha1",
                "kind": "InferenceStack",
                "metadata": {"name": "demo", "namespace": "llm", "uid": "stack-uid"},
                "status": status,
            }),
        );
        status
    }

    /// After the scenario: no further request until the client is dropped
    /// with the reconcile's context.
    pub async fn done(mut self) {
        let next = tokio::time::timeout(Duration::from_secs(30), self.handle.next_request())
            .await
            .expect("the client was not dropped after the reconcile");
        if let Some((request, _)) = next {
            panic!(
                "unexpected request after the scenario: {}",
                read(request).await.describe()
            );
        }
    }
}

/// Answers with `body` as JSON.
pub fn respond(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let response = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("a valid response");
    send.send_response(response);
}

/// Answers with a Kubernetes `Status` failure.
pub fn respond_failure(send: SendResponse<Response<Body>>, code: u16, reason: &str, message: &str) {
    let status = StatusCode::from_u16(code).expect("an HTTP status code");
    respond(
        send,
        status,
        &json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }),
    );
}

async fn read(request: Request<Body>) -> Call {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(decode_query).unwrap_or_default();
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("the request body reads");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("the request body is JSON")
    };
    Call {
        method,
        path,
        query,
        accept,
        body,
    }
}

/// `a=b&c=d%2Ce` as a map (application/x-www-form-urlencoded).
fn decode_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
                out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 query")
}
