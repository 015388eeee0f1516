//! The scheduler's queue and the cap's count, answered from the actions read model: the due
//! times are the ones the events carry (decided in the domain), not recomputed here.

use chrono::Duration;
use uuid::Uuid;
use xdr_commands::response::scheduler::{DueAction, DueReason};
use xdr_commands::store::{EventStore, ExpectedVersion, NewEvent};
use xdr_commands::testing::TestDb;
use xdr_domain::ids::{ActionId, OrgId, UserId};
use xdr_domain::response::action::{ActionApproved, ActionKind, ActionRequested, DISPATCH_GRACE_SECS};
use xdr_domain::{Event, EventMetadata};
use xdr_projections::action_queue::{recent_automatic_blocks, ActionSchedule};
use xdr_projections::catch_up_once;

use crate::helpers::*;

fn requested(org: OrgId, action: ActionId, needs_approval: bool, due: Option<i64>) -> Event {
    Event::ActionRequested(ActionRequested {
        action_id: action,
        org_id: org,
        incident_id: None,
        kind: ActionKind::BlockIp,
        target: "203.0.113.9".into(),
        duration_secs: None,
        note: None,
        requested_by: None,
        policy_id: None,
        policy_name: None,
        follows: None,
        automatic: true,
        needs_approval,
        requested_at: at(100),
        dispatch_due_at: due.map(at),
    })
}

async fn append(store: &EventStore, org: OrgId, action: ActionId, events: Vec<Event>) {
    let metadata = EventMetadata::system("test");
    let events =
        events.iter().map(|e| NewEvent::from_event(Uuid::now_v7(), action.stream_id(), e, &metadata)).collect();
    store.append(org, &action.stream_id(), ExpectedVersion::Any, events).await.unwrap();
}

#[tokio::test]
async fn the_queue_holds_the_due_times_the_events_carry() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Queue Corp").await.id;
    let lead = UserId(Uuid::from_u128(7));
    // Approved at 200, due when the approval says (an hour later), not at a grace the
    // projection would add.
    let approved = ActionId(Uuid::from_u128(1));
    let approval =
        ActionApproved { action_id: approved, by_user: lead, approved_at: at(200), dispatch_due_at: Some(at(3800)) };
    append(&store, org, approved, vec![requested(org, approved, true, None), Event::ActionApproved(approval)]).await;
    // Needs no approval: due when the request says.
    let direct = ActionId(Uuid::from_u128(2));
    append(&store, org, direct, vec![requested(org, direct, false, Some(1000))]).await;
    // Recorded before approvals carried the time: the domain's rule of the time applies.
    let legacy = ActionId(Uuid::from_u128(3));
    let old: ActionApproved =
        serde_json::from_value(serde_json::json!({"action_id": legacy, "by_user": lead, "approved_at": at(300)}))
            .unwrap();
    append(&store, org, legacy, vec![requested(org, legacy, true, None), Event::ActionApproved(old)]).await;
    // Waiting for approval: never due.
    let waiting = ActionId(Uuid::from_u128(4));
    append(&store, org, waiting, vec![requested(org, waiting, true, None)]).await;
    catch_up_once(&db.pool).await.unwrap();

    let queue = ActionSchedule::new(db.pool.clone());
    let due = |action| DueAction { org, action, reason: DueReason::Dispatch };
    assert_eq!(queue.due_at(at(299), 10).await.unwrap(), vec![]);
    assert_eq!(queue.due_at(at(300 + DISPATCH_GRACE_SECS), 10).await.unwrap(), vec![due(legacy)]);
    assert_eq!(queue.due_at(at(3799), 10).await.unwrap(), vec![due(legacy), due(direct)]);
    assert_eq!(queue.due_at(at(1_000_000), 10).await.unwrap(), vec![due(legacy), due(direct), due(approved)]);
    assert_eq!(queue.due_at(at(1_000_000), 1).await.unwrap(), vec![due(legacy)], "the longest overdue first");

    // The cap counts automatic blocks that went out without approval, in its window only.
    let recent = recent_automatic_blocks(&db.pool, org, at(0), at(200)).await.unwrap();
    assert_eq!(recent, vec![direct]);
    let later = recent_automatic_blocks(&db.pool, org, at(100), at(100) + Duration::hours(1)).await.unwrap();
    assert_eq!(later, vec![], "requested at 100 is outside (100, …]");
}
