//! Gap safety: the bug that bigserial cursors ship (a low sequence committing after a higher
//! one is read and skipped) must not exist here.

use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::subscription::OrgTail;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, ExpectedVersion};
use xdr_domain::ids::OrgId;

use crate::helpers::event;

const WRITERS: usize = 8;
const ROUNDS: usize = 25;

async fn jitter() {
    let ms = rand::thread_rng().gen_range(0..8);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_sees_every_committed_event_exactly_once_in_order_under_concurrent_writers() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let orgs = [OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4())];

    // Writers: half append single events to their own stream, half append batches; every
    // transaction sleeps before and after its append so commits interleave.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let org = orgs[w % 2];
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for round in 0..ROUNDS {
                    let mut tx = store.pool().begin().await.unwrap();
                    jitter().await;
                    let stream = format!("writer-{w}");
                    if w % 4 < 2 {
                        let e = event(&stream, round);
                        ids.push(e.event_id);
                        store.append_in_tx(&mut tx, org, &stream, ExpectedVersion::Any, vec![e]).await.unwrap();
                    } else {
                        let batch: Vec<_> = (0..1 + round % 5).map(|i| event(&stream, i)).collect();
                        ids.extend(batch.iter().map(|e| e.event_id));
                        store.append_batch_in_tx(&mut tx, org, batch).await.unwrap();
                    }
                    jitter().await;
                    tx.commit().await.unwrap();
                }
                (org, ids)
            })
        })
        .collect();

    // Tails run while writers write, reading as they go; once the writers are done they
    // drain what is left and stop.
    let done = Arc::new(AtomicBool::new(false));
    let tails: Vec<_> = orgs
        .iter()
        .map(|&org| {
            let (pool, done) = (db.pool.clone(), done.clone());
            tokio::spawn(async move {
                let mut tail = OrgTail::new(pool, org, 0).await.unwrap();
                let mut seen = Vec::new();
                loop {
                    if done.load(Ordering::SeqCst) {
                        loop {
                            let rest = tail.poll(7).await.unwrap();
                            if rest.is_empty() {
                                return seen;
                            }
                            seen.extend(rest);
                        }
                    }
                    if let Ok(batch) = tokio::time::timeout(Duration::from_millis(200), tail.next_batch(7)).await {
                        seen.extend(batch.unwrap());
                    }
                }
            })
        })
        .collect();

    let mut committed: HashMap<OrgId, Vec<Uuid>> = HashMap::new();
    for w in writers {
        let (org, ids) = w.await.unwrap();
        committed.entry(org).or_default().extend(ids);
    }
    done.store(true, Ordering::SeqCst);
    for (i, t) in tails.into_iter().enumerate() {
        let seen = t.await.unwrap();
        let org = orgs[i];
        let seqs: Vec<i64> = seen.iter().map(|e| e.org_seq).collect();
        let expected_seqs: Vec<i64> = (1..=committed[&org].len() as i64).collect();
        assert_eq!(seqs, expected_seqs, "org_seq seen in order, gap-free, each once");
        let mut seen_ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
        let mut want = committed[&org].clone();
        seen_ids.sort();
        want.sort();
        assert_eq!(seen_ids, want, "exactly the committed events of this org");
        assert!(seen.iter().all(|e| e.org_id == org.0));
    }
}
