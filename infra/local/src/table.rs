//! Creates the stage's table from template.yaml's own `Table` resource, so the
//! local table and the deployed one cannot drift.

use anyhow::{anyhow, bail, Context};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde::Deserialize;
use std::path::Path;

/// The parts of `Resources.Table.Properties` the local table needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDefinition {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyDef>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDef>,
    #[serde(default)]
    pub billing_mode: Option<String>,
    #[serde(default)]
    pub stream_specification: Option<StreamSpec>,
    #[serde(default)]
    pub time_to_live_specification: Option<TtlSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyDef {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyDef>,
    pub projection: ProjectionDef,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDef {
    pub projection_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpec {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSpec {
    pub attribute_name: String,
    pub enabled: bool,
}

/// Reads the `Table` resource's properties out of a SAM/CloudFormation
/// template (its intrinsic-function tags elsewhere are ignored).
pub fn table_definition(template: &str) -> anyhow::Result<TableDefinition> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(template).context("template.yaml is not YAML")?;
    let properties = doc
        .get("Resources")
        .and_then(|r| r.get("Table"))
        .and_then(|t| t.get("Properties"))
        .ok_or_else(|| anyhow!("template.yaml has no Resources.Table.Properties"))?;
    serde_yaml::from_value(properties.clone()).context("Resources.Table.Properties")
}

pub async fn ensure_table(
    sdk: &aws_config::SdkConfig,
    endpoint: &str,
    table_name: &str,
    template: &Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let definition = table_definition(&text)?;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build(),
    );
    // DynamoDB Local accepts connections a little before it answers requests.
    let mut waited = std::time::Duration::ZERO;
    loop {
        match client.list_tables().limit(1).send().await {
            Ok(_) => break,
            Err(_) if waited < std::time::Duration::from_secs(60) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                waited += std::time::Duration::from_millis(100);
            }
            Err(e) => bail!("DynamoDB at {endpoint} does not answer: {e:?}"),
        }
    }
    if let Ok(existing) = client.describe_table().table_name(table_name).send().await {
        // A table kept from an earlier version gets the indexes added since.
        let have: Vec<String> = existing
            .table
            .and_then(|t| t.global_secondary_indexes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.index_name)
            .collect();
        for index in &definition.global_secondary_indexes {
            if have.contains(&index.index_name) {
                continue;
            }
            let used: Vec<&str> = index
                .key_schema
                .iter()
                .map(|k| k.attribute_name.as_str())
                .collect();
            let mut update = client.update_table().table_name(table_name);
            for a in &definition.attribute_definitions {
                if used.contains(&a.attribute_name.as_str()) {
                    update = update.attribute_definitions(attribute_definition(a)?);
                }
            }
            let mut create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(&index.index_name)
                .projection(projection(&index.projection));
            for k in &index.key_schema {
                create = create.key_schema(key_element(k)?);
            }
            update
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .create(create.build()?)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| anyhow!("UpdateTable (index {}) failed: {e:?}", index.index_name))?;
        }
        return Ok(());
    }
    let mut create = client.create_table().table_name(table_name);
    for a in &definition.attribute_definitions {
        create = create.attribute_definitions(attribute_definition(a)?);
    }
    for k in &definition.key_schema {
        create = create.key_schema(key_element(k)?);
    }
    for index in &definition.global_secondary_indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.index_name)
            .projection(projection(&index.projection));
        for k in &index.key_schema {
            gsi = gsi.key_schema(key_element(k)?);
        }
        create = create.global_secondary_indexes(gsi.build()?);
    }
    create = create.billing_mode(match definition.billing_mode.as_deref() {
        Some("PROVISIONED") => BillingMode::Provisioned,
        _ => BillingMode::PayPerRequest,
    });
    let stream = definition.stream_specification.as_ref().ok_or_else(|| {
        anyhow!("the Table must have a stream: the stream function depends on it")
    })?;
    create = create.stream_specification(
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
            .build()?,
    );
    create
        .send()
        .await
        .map_err(|e| anyhow!("CreateTable failed: {e:?}"))?;
    if let Some(ttl) = &definition.time_to_live_specification {
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(ttl.enabled)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!("UpdateTimeToLive failed: {e:?}"))?;
    }
    Ok(())
}

fn attribute_definition(a: &AttributeDef) -> anyhow::Result<AttributeDefinition> {
    let kind = match a.attribute_type.as_str() {
        "S" => ScalarAttributeType::S,
        "N" => ScalarAttributeType::N,
        "B" => ScalarAttributeType::B,
        other => bail!("unknown attribute type {other}"),
    };
    Ok(AttributeDefinition::builder()
        .attribute_name(&a.attribute_name)
        .attribute_type(kind)
        .build()?)
}

fn key_element(k: &KeyDef) -> anyhow::Result<KeySchemaElement> {
    let kind = match k.key_type.as_str() {
        "HASH" => KeyType::Hash,
        "RANGE" => KeyType::Range,
        other => bail!("unknown key type {other}"),
    };
    Ok(KeySchemaElement::builder()
        .attribute_name(&k.attribute_name)
        .key_type(kind)
        .build()?)
}

fn projection(p: &ProjectionDef) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(p.projection_type.as_str()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_template() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
                .expect("template.yaml at the repository root");
        let def = table_definition(&text).expect("table definition");
        assert_eq!(def.key_schema.len(), 2);
        assert_eq!(def.key_schema[0].attribute_name, "pk");
        assert_eq!(def.key_schema[0].key_type, "HASH");
        assert_eq!(def.key_schema[1].attribute_name, "sk");
        assert_eq!(
            def.stream_specification
                .map(|s| s.stream_view_type)
                .as_deref(),
            Some("NEW_AND_OLD_IMAGES")
        );
        let sweep = &def.global_secondary_indexes[0];
        assert_eq!(sweep.index_name, "sweep");
        assert_eq!(sweep.key_schema[0].attribute_name, "sweepBucket");
        let ttl = def.time_to_live_specification.expect("ttl");
        assert_eq!(ttl.attribute_name, "ttl");
        assert!(ttl.enabled);
    }

    #[test]
    fn tags_elsewhere_do_not_matter_and_a_missing_table_is_an_error() {
        let text = "Resources:\n  Fn:\n    Properties:\n      X: !Ref Y\n";
        assert!(table_definition(text).is_err());
        let text = "Resources:\n  Table:\n    Properties:\n      AttributeDefinitions: []\n      KeySchema: []\n  Fn:\n    Properties:\n      X: !GetAtt Y.Arn\n";
        assert!(table_definition(text).is_ok());
    }
}
