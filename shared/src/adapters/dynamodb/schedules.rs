//! The local stage's schedules (`SCHEDULES` / `<due ms>#<name>`): kept in the
//! table so a stage restarted on kept data still fires them. In AWS,
//! EventBridge Scheduler keeps them instead.

use super::{keys, n, query_page, s, DynamoStore, StoreError};
use crate::store::*;
use aws_sdk_dynamodb::types::AttributeValue;

impl DynamoStore {
    pub async fn put_schedule(&self, schedule: &ScheduleItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::SCHEDULES_PK))
            .item("sk", s(keys::schedule_sk(schedule.due_ms, &schedule.name)))
            .item("name", s(&schedule.name))
            .item("dueMs", n(schedule.due_ms))
            .item("payload", s(&schedule.payload))
            .send()
            .await
            .map(drop)
            .map_err(|e| StoreError::dynamo("PutItem", e))
    }

    /// The earliest schedules, at most `limit`, in due order.
    pub async fn earliest_schedules(&self, limit: i32) -> Result<Vec<ScheduleItem>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::SCHEDULES_PK))
            .limit(limit);
        let (items, _) = query_page(query).await?;
        items
            .into_iter()
            .map(|item| {
                let text = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(v)) => Ok(v.clone()),
                    Some(AttributeValue::N(v)) => Ok(v.clone()),
                    _ => Err(StoreError::Corrupt(format!("a schedule without {name}"))),
                };
                Ok(ScheduleItem {
                    name: text("name")?,
                    due_ms: text("dueMs")?
                        .parse()
                        .map_err(|_| StoreError::Corrupt("a schedule's dueMs".into()))?,
                    payload: text("payload")?,
                })
            })
            .collect()
    }

    /// A schedule that ran goes (as EventBridge Scheduler's `DELETE` after completion).
    pub async fn delete_schedule(&self, due_ms: i64, name: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::SCHEDULES_PK))
            .key("sk", s(keys::schedule_sk(due_ms, name)))
            .send()
            .await
            .map(drop)
            .map_err(|e| StoreError::dynamo("DeleteItem", e))
    }
}
