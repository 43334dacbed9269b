//! The management API adapter (`sockhop::adapters::management_api::ManagementApi`,
//! what the functions use in AWS) against the stage's emulation of API Gateway's
//! `@connections` API: post, Gone for an unknown connection, GetConnection, close.
//! (The stage's own handlers hand frames to its sockets in process.)

use serde_json::json;
use sockhop::adapters::management_api::ManagementApi;
use sockhop::gateway::{PostError, Sockets};
use sockhop_tests::TestStage;

#[tokio::test]
async fn the_management_api_adapter_posts_finds_gone_and_closes() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim"}))
        .await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            stage.stage.access_key_id.clone(),
            "local",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let endpoint = stage.stage.websocket_url().replacen("ws://", "http://", 1);
    let api = ManagementApi::new(aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build(),
    ));
    api.post(&jim.connection_id, r#"{"event":"direct","data":1}"#)
        .await
        .expect("posted");
    assert_eq!(jim.expect_event("direct").await["data"], 1);
    assert_eq!(
        api.post("no-such-connection", "{}").await,
        Err(PostError::Gone)
    );
    // GetConnection: how a Gone answer is confirmed before teardown.
    assert_eq!(api.is_open(&jim.connection_id).await, Ok(true));
    assert_eq!(api.is_open("no-such-connection").await, Ok(false));
    api.close(&jim.connection_id).await.expect("closed");
    assert!(
        jim.next_within(std::time::Duration::from_secs(5))
            .await
            .is_none(),
        "the socket is closed"
    );
}
