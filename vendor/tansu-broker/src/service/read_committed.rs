// weir patch: aborted transactions in read_committed fetches.
//
// tansu-storage 0.6.0 writes a transaction's records to the log as they are produced and an abort
// or commit marker when it ends, and limits read_committed fetches to the last stable offset, but
// its `FetchService` always answers with an empty `AbortedTransactions` list. Kafka clients only
// drop the records of an aborted transaction when the fetch response lists it, so every aborted
// record (an explicit abort after the records were sent, or the open transaction of a crashed
// producer aborted when its successor starts) reached read_committed consumers as if committed.
//
// This service answers the fetch with tansu's own `FetchService`, then, for read_committed
// requests, fills in the list: for each producer epoch whose transactional records appear in a
// partition's answer, the first such offset, when the marker that ends that transaction is an
// abort. The marker lies below the last stable offset, so when it is not in the answer the log is
// read on from there until it is found. Transactions are told apart by producer id and epoch: a
// producer's successor (same transactional id, next epoch) writes under the same id.

use std::collections::BTreeMap;

use rama::{Context, Service};
use tansu_sans_io::{
    BatchAttribute, ControlBatch, FetchRequest, FetchResponse, IsolationLevel,
    fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData},
    record::{deflated, inflated},
};
use tansu_storage::{Error, FetchService, Result, Storage, TopicId, Topition};
use uuid::Uuid;

/// Most bytes read per look-ahead step while searching for a transaction's end marker.
const LOOK_AHEAD_BYTES: u32 = 1 << 20;

/// A [`Service`] using [`Storage`] as context that answers [`FetchRequest`]s like
/// [`FetchService`] and lists the aborted transactions of read_committed answers.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ReadCommittedFetchService;

impl<G> Service<G, FetchRequest> for ReadCommittedFetchService
where
    G: Storage,
{
    type Response = FetchResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: FetchRequest) -> Result<Self::Response> {
        let read_committed = req
            .isolation_level
            .is_some_and(|level| level == i8::from(IsolationLevel::ReadCommitted));
        let mut response = FetchService.serve(ctx.clone(), req).await?;
        if read_committed {
            for topic in response.responses.iter_mut().flatten() {
                let Some(name) = topic_name(ctx.state(), topic).await? else {
                    continue;
                };
                for partition in topic.partitions.iter_mut().flatten() {
                    settle_partition(ctx.state(), &name, partition).await?;
                }
            }
        }
        Ok(response)
    }
}

/// The topic's name: given in the answer, or looked up by its id (fetch v13+).
async fn topic_name<G: Storage>(
    storage: &G,
    topic: &FetchableTopicResponse,
) -> Result<Option<String>> {
    if let Some(name) = topic.topic.as_ref().filter(|name| !name.is_empty()) {
        return Ok(Some(name.clone()));
    }
    let Some(id) = topic.topic_id else {
        return Ok(None);
    };
    let metadata = storage
        .metadata(Some(&[TopicId::from(Uuid::from_bytes(id))]))
        .await?;
    Ok(metadata.topics().first().and_then(|t| t.name.clone()))
}

/// Transactions still open at the point the scan has reached: (producer id, epoch) → the first
/// offset of theirs in the answer.
type Open = BTreeMap<(i64, i16), i64>;

/// Most look-ahead steps for one partition's answer.
const LOOK_AHEAD_STEPS: usize = 64;

/// Fills in one partition's aborted transactions.
async fn settle_partition<G: Storage>(
    storage: &G,
    topic: &str,
    partition: &mut PartitionData,
) -> Result<()> {
    let mut aborted = Vec::new();
    if let (Some(records), Some(stable)) =
        (partition.records.as_ref(), partition.last_stable_offset)
    {
        let topition = Topition::new(topic.to_owned(), partition.partition_index);
        analyse(storage, &topition, &records.batches, stable, &mut aborted).await?;
    }
    partition.aborted_transactions = Some(aborted);
    Ok(())
}

/// Lists the aborted transactions of `batches` in `aborted`, reading on below `stable` for end
/// markers not in `batches`.
async fn analyse<G: Storage>(
    storage: &G,
    topition: &Topition,
    batches: &[deflated::Batch],
    stable: i64,
    aborted: &mut Vec<AbortedTransaction>,
) -> Result<()> {
    let mut open = Open::new();
    let mut next = None;
    for batch in batches {
        scan(batch, &mut open, aborted, true)?;
        next = Some(end_of(batch));
    }
    let Some(mut next) = next else {
        return Ok(());
    };
    let mut steps = 0;
    while !open.is_empty() && next < stable {
        steps += 1;
        if steps > LOOK_AHEAD_STEPS {
            break;
        }
        let more = storage
            .fetch(topition, next, 1, LOOK_AHEAD_BYTES, IsolationLevel::ReadCommitted)
            .await?;
        let Some(last) = more.last() else {
            break;
        };
        let after = end_of(last);
        for batch in &more {
            scan(batch, &mut open, aborted, false)?;
        }
        if after <= next {
            break;
        }
        next = after;
    }
    Ok(())
}

/// The offset after `batch`.
fn end_of(batch: &deflated::Batch) -> i64 {
    batch.base_offset + i64::from(batch.last_offset_delta) + 1
}

/// Notes a transactional batch: data opens its producer epoch's transaction (when `opening`), an
/// end marker of the same epoch closes it, and an abort marker lists it.
fn scan(
    batch: &deflated::Batch,
    open: &mut Open,
    aborted: &mut Vec<AbortedTransaction>,
    opening: bool,
) -> Result<()> {
    let attributes = BatchAttribute::try_from(batch.attributes)?;
    if !attributes.transaction {
        return Ok(());
    }
    let key = (batch.producer_id, batch.producer_epoch);
    if !attributes.control {
        if opening {
            _ = open.entry(key).or_insert(batch.base_offset);
        }
        return Ok(());
    }
    let Some(first_offset) = open.remove(&key) else {
        return Ok(());
    };
    if is_abort(batch)? {
        aborted.push(
            AbortedTransaction::default()
                .producer_id(batch.producer_id)
                .first_offset(first_offset),
        );
    }
    Ok(())
}

/// True when the control batch is an abort marker.
fn is_abort(batch: &deflated::Batch) -> Result<bool> {
    let inflated = inflated::Batch::try_from(batch)?;
    let Some(key) = inflated.records.first().and_then(|r| r.key.clone()) else {
        return Ok(false);
    };
    Ok(ControlBatch::try_from(key)?.is_abort())
}
