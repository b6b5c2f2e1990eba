//! The seed service's contract, checked against any base URL: the wasmhouse
//! host, or another runtime serving the composed component.

use super::{ClickHouse, get};

/// Every route answers with the seed's status and body.
pub async fn assert_routes(base: &str, clickhouse: &ClickHouse) {
    let url = |path: &str| format!("{base}{path}");
    let health = get(&url("/health")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json, serde_json::json!({ "status": "healthy" }));

    let status = get(&url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["status"], "connected");
    assert_eq!(status.json["version"], "18.16.1");
    assert_eq!(status.json["host"], "127.0.0.1");
    assert_eq!(status.json["port"], clickhouse.http_port());

    assert_simple_query(base).await;

    let heavy = get(&url("/concurrent/heavy-query")).await;
    assert_eq!(heavy.status, 200, "{}", heavy.text);
    // Plain JSON numbers, not ClickHouse's quoted 64-bit integers.
    assert_eq!(
        heavy.json["result"],
        serde_json::json!([{ "c": 10_000_000u64, "s": 49_999_995_000_000u64 }])
    );

    let isolation = get(&url("/concurrent/test-isolation?delay=0.1")).await;
    assert_eq!(isolation.status, 200, "{}", isolation.text);
    assert_eq!(isolation.json["delay"], 0.1);
    assert!(
        isolation.json["elapsed_s"]
            .as_f64()
            .is_some_and(|s| s >= 0.1)
    );
    for field in ["request_id", "instance_id", "started_at", "finished_at"] {
        assert!(
            isolation.json[field].is_string(),
            "{field} missing: {}",
            isolation.text
        );
    }

    let stream = get(&url("/stream/numbers?n=1000")).await;
    assert_eq!(stream.status, 200, "{}", stream.text);
    let numbers: Vec<u64> = stream
        .text
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            row["number"].as_u64().expect("a number")
        })
        .collect();
    assert_eq!(numbers, (0..1000).collect::<Vec<_>>());

    let missing = get(&url("/no/such/route")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["kind"], "not_found");

    let wrong_method = super::send(super::client().post(url("/health"))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json["kind"], "method_not_allowed");
}

/// `/concurrent/simple-query` answers `SELECT 1`'s row.
pub async fn assert_simple_query(base: &str) {
    let simple = get(&format!("{base}/concurrent/simple-query")).await;
    assert_eq!(simple.status, 200, "{}", simple.text);
    assert_eq!(simple.json["query"], "SELECT 1 AS value");
    assert_eq!(simple.json["result"], serde_json::json!([{ "value": 1 }]));
    assert!(
        simple.json["elapsed_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );
}

/// Bad `delay` values are 422 with a JSON error; a missing one means 1.
pub async fn assert_client_errors(base: &str) {
    for bad in ["abc", "-1", "4", "1%3BDROP%20TABLE%20x", "NaN", ""] {
        let reply = get(&format!("{base}/concurrent/test-isolation?delay={bad}")).await;
        assert_eq!(reply.status, 422, "delay={bad}: {}", reply.text);
        assert_eq!(reply.json["kind"], "invalid_parameter", "delay={bad}");
        assert!(
            reply.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("delay"))
        );
    }
    let bad_n = get(&format!("{base}/stream/numbers?n=lots")).await;
    assert_eq!(bad_n.status, 422, "{}", bad_n.text);
    let default = get(&format!("{base}/concurrent/test-isolation")).await;
    assert_eq!(default.status, 200, "{}", default.text);
    assert_eq!(default.json["delay"], 1);
}

/// With ClickHouse unreachable: 503 JSON from every database route, and
/// `/health` still fine.
pub async fn assert_clickhouse_down(base: &str) {
    let status = get(&format!("{base}/clickhouse-status")).await;
    assert_eq!(status.status, 503, "{}", status.text);
    assert_eq!(status.json["status"], "disconnected");
    assert!(
        status.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("unavailable"))
    );
    for path in [
        "/concurrent/simple-query",
        "/concurrent/heavy-query",
        "/concurrent/test-isolation?delay=0",
    ] {
        let reply = get(&format!("{base}{path}")).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.text);
        assert_eq!(reply.json["kind"], "clickhouse_unavailable", "{path}");
    }
    assert_eq!(get(&format!("{base}/health")).await.status, 200);
}

/// What a route component written with a router (the Rust SDK's or the
/// JavaScript one) answers beyond the routes themselves: 404 and 405 (with
/// `Allow`) as JSON, a 422 naming the parameter and its rule, and an OpenAPI
/// document generated from the same declarations.
pub async fn assert_router(base: &str) {
    let missing = get(&format!("{base}/no/such/route")).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(missing.json["kind"], "not_found", "{}", missing.text);

    let post = super::send(super::client().post(format!("{base}/health"))).await;
    assert_eq!(post.status, 405, "{}", post.text);
    assert_eq!(post.json["kind"], "method_not_allowed", "{}", post.text);
    let allow = post.headers.get("allow").and_then(|v| v.to_str().ok());
    assert!(allow.is_some_and(|a| a.contains("GET")), "Allow: {allow:?}");

    let bad = get(&format!("{base}/concurrent/test-isolation?delay=9")).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json["parameter"], "delay", "{}", bad.text);
    assert!(
        bad.json["rule"].as_str().is_some_and(|r| r.contains('3')),
        "{}",
        bad.text
    );

    let doc = get(&format!("{base}/openapi.json")).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let delay = &doc.json["paths"]["/concurrent/test-isolation"]["get"]["parameters"][0];
    assert_eq!(delay["name"], "delay", "{}", doc.text);
    assert_eq!(delay["in"], "query");
    assert_eq!(delay["schema"]["type"], "number", "{delay}");
    assert_eq!(delay["schema"]["maximum"], 3, "{delay}");
    let n = &doc.json["paths"]["/stream/numbers"]["get"]["parameters"][0];
    assert_eq!(n["schema"]["type"], "integer", "{n}");
}
