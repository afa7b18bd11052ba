//! Shared helpers for the integration tests: a real server on 127.0.0.1 and a real HTTP client.
#![allow(dead_code)]

use std::time::Duration;

use prefactor_server::{LocalServer, ServerConfig};
use serde_json::{Value, json};

/// A started server plus an HTTP client that sends its token.
pub struct Api {
    pub server: LocalServer,
    pub http: reqwest::Client,
}

impl Api {
    pub fn start() -> Api {
        Api::start_with(ServerConfig::default())
    }

    pub fn start_with(config: ServerConfig) -> Api {
        let server = LocalServer::start(config).expect("server starts");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Api { server, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.base_url(), path)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request completes");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("response is JSON (status {status}): {text}"));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(self.server.token())).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).bearer_auth(self.server.token()).json(&body)).await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(self.server.token())
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Registers an instance with the given schema document (or none) and returns its details.
    pub async fn register(&self, schema: Option<Value>) -> Value {
        let mut body = json!({"agent_version": {"name": "Test", "external_identifier": "v1"}});
        if let Some(schema) = schema {
            body["agent_schema_version"] = schema;
        }
        let (status, body) = self.post("/api/v1/agent_instance/register", body).await;
        assert_eq!(status, 200, "{body}");
        body["details"].clone()
    }

    pub async fn register_id(&self) -> String {
        self.register(None).await["id"].as_str().unwrap().to_string()
    }

    pub async fn create_span(
        &self,
        instance_id: &str,
        schema_name: &str,
        status: &str,
        payload: Value,
    ) -> (u16, Value) {
        self.post(
            "/api/v1/agent_spans",
            json!({"details": {"agent_instance_id": instance_id, "schema_name": schema_name, "status": status, "payload": payload}}),
        )
        .await
    }

    pub async fn finish_span(&self, span_id: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/v1/agent_spans/{span_id}/finish"), body).await
    }
}

/// A schema document with one LLM span type (params + result schema + template).
pub fn llm_schema() -> Value {
    json!({
        "external_identifier": "schemas-v1",
        "span_type_schemas": [{
            "name": "agent:llm",
            "title": "LLM Call",
            "params_schema": {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]},
            "result_schema": {"type": "object", "properties": {"tokens": {"type": "integer"}}},
            "template": "{{ model }}{% if tokens %}: {{ tokens }} tokens{% endif %}"
        }],
        "quality_schemas": [{
            "name": "accuracy",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]},
            "template": "Score: {{ score }}"
        }]
    })
}
