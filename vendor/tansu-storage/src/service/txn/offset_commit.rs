// Copyright ⓒ 2024-2025 Peter Morgan <peter.james.morgan@gmail.com>
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use rama::{Context, Service};
use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use tansu_sans_io::{
    ApiKey, ErrorCode, TxnOffsetCommitResponse,
    txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic},
};
use tracing::warn;
use tracing::instrument;

use crate::{Error, GroupState, Result, Storage};

/// A [`Service`] using [`Storage`] as [`Context`] taking [`tansu_sans_io::TxnOffsetCommitRequest`] returning [`TxnOffsetCommitResponse`].
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct OffsetCommitService;

impl ApiKey for OffsetCommitService {
    const KEY: i16 = tansu_sans_io::TxnOffsetCommitRequest::KEY;
}

impl<G> Service<G, tansu_sans_io::TxnOffsetCommitRequest> for OffsetCommitService
where
    G: Storage,
{
    type Response = TxnOffsetCommitResponse;
    type Error = Error;

    #[instrument(skip(ctx, req))]
    async fn serve(
        &self,
        ctx: Context<G>,
        req: tansu_sans_io::TxnOffsetCommitRequest,
    ) -> Result<Self::Response, Self::Error> {
        match zombie_commit(ctx.state(), &req).await {
            Ok(None) => {}
            Ok(Some(fenced)) => {
                return Ok(TxnOffsetCommitResponse::default()
                    .throttle_time_ms(0)
                    .topics(Some(fenced)));
            }
            // The group could not be read: the client tries again (a retriable error), rather
            // than the commit going through unchecked or the connection failing.
            Err(error) => {
                warn!(?error, group = req.group_id, "could not check the committing member");
                return Ok(TxnOffsetCommitResponse::default()
                    .throttle_time_ms(0)
                    .topics(Some(answer_all(&req, ErrorCode::CoordinatorLoadInProgress))));
            }
        }
        let responses = ctx
            .state()
            .txn_offset_commit(crate::TxnOffsetCommitRequest {
                transaction_id: req.transactional_id.to_owned(),
                group_id: req.group_id.to_owned(),
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
                generation_id: req.generation_id,
                member_id: req.member_id,
                group_instance_id: req.group_instance_id,
                topics: req.topics.unwrap_or_default(),
            })
            .await?;

        Ok(TxnOffsetCommitResponse::default()
            .throttle_time_ms(0)
            .topics(Some(responses)))
    }
}

// weir patch: fencing of zombie offset commits (KIP-447). A member that has not yet heard of a
// rebalance goes on committing its old partitions' offsets in its transactions; if one of those
// partitions was already given to another member (who started from the offset committed before),
// both write the same records. Kafka refuses a TxnOffsetCommit from an old generation; tansu's
// coordinator moves to a new generation at every join, before the members of the old one have
// handed their partitions over, so refusing every old generation would fence each ordinary
// hand-over. This refuses exactly the harmful case: the group has formed a newer generation whose
// assignment gives one of the committed partitions to another member. The member's client then
// aborts the transaction (ILLEGAL_GENERATION is abortable), so the records it wrote since its last
// commit are not seen by read_committed readers; the new owner writes them. While the group is
// forming again no assignment is stored, and a commit then is let through.
/// The answer fencing `req`, when it comes from a member of an older generation and commits a
/// partition that the group's current assignment gives to another member.
async fn zombie_commit<G: Storage>(
    storage: &G,
    req: &tansu_sans_io::TxnOffsetCommitRequest,
) -> Result<Option<Vec<TxnOffsetCommitResponseTopic>>> {
    let (Some(generation), Some(member)) = (req.generation_id, req.member_id.as_deref()) else {
        return Ok(None);
    };
    if generation < 0 || member.is_empty() {
        return Ok(None);
    }
    let groups = storage
        .describe_groups(Some(&[req.group_id.clone()]), false)
        .await?;
    let Some(detail) = groups.first().and_then(|group| group.detail()) else {
        return Ok(None);
    };
    let GroupState::Formed { assignments, .. } = &detail.state else {
        return Ok(None);
    };
    if detail.generation_id <= generation {
        return Ok(None);
    }
    let owners = owners(assignments);
    let taken = req.topics.iter().flatten().any(|topic| {
        topic.partitions.iter().flatten().any(|partition| {
            owners
                .get(&(topic.name.clone(), partition.partition_index))
                .is_some_and(|owner| owner.as_str() != member)
        })
    });
    if !taken {
        return Ok(None);
    }
    warn!(
        group = req.group_id,
        member,
        generation,
        current = detail.generation_id,
        transaction = req.transactional_id,
        "fenced an offset commit of a partition the group has given to another member"
    );
    Ok(Some(answer_all(req, ErrorCode::IllegalGeneration)))
}

/// An answer to `req` with `error` for every partition.
fn answer_all(
    req: &tansu_sans_io::TxnOffsetCommitRequest,
    error: ErrorCode,
) -> Vec<TxnOffsetCommitResponseTopic> {
    req.topics
        .iter()
        .flatten()
        .map(|topic| {
            TxnOffsetCommitResponseTopic::default()
                .name(topic.name.clone())
                .partitions(Some(
                    topic
                        .partitions
                        .iter()
                        .flatten()
                        .map(|partition| {
                            TxnOffsetCommitResponsePartition::default()
                                .partition_index(partition.partition_index)
                                .error_code(error.into())
                        })
                        .collect(),
                ))
        })
        .collect()
}

/// Which member each partition is assigned to, from the members' consumer-protocol assignments
/// (an assignment that does not decode assigns nothing).
fn owners(assignments: &BTreeMap<String, Bytes>) -> BTreeMap<(String, i32), String> {
    let mut owners = BTreeMap::new();
    for (member, assignment) in assignments {
        for partition in assigned_partitions(assignment.clone()).unwrap_or_default() {
            _ = owners.insert(partition, member.clone());
        }
    }
    owners
}

/// The partitions of a ConsumerProtocolAssignment (versions 0 to 3 share this layout: a version,
/// then an array of topics, each a name and an array of partition indexes), or `None` if the
/// bytes end early.
fn assigned_partitions(mut bytes: Bytes) -> Option<BTreeSet<(String, i32)>> {
    fn take_i16(bytes: &mut Bytes) -> Option<i16> {
        (bytes.remaining() >= 2).then(|| bytes.get_i16())
    }
    fn take_i32(bytes: &mut Bytes) -> Option<i32> {
        (bytes.remaining() >= 4).then(|| bytes.get_i32())
    }
    let _version = take_i16(&mut bytes)?;
    let mut partitions = BTreeSet::new();
    for _ in 0..take_i32(&mut bytes)?.max(0) {
        let length = usize::try_from(take_i16(&mut bytes)?).ok()?;
        if bytes.remaining() < length {
            return None;
        }
        let topic = String::from_utf8(bytes.split_to(length).to_vec()).ok()?;
        for _ in 0..take_i32(&mut bytes)?.max(0) {
            _ = partitions.insert((topic.clone(), take_i32(&mut bytes)?));
        }
    }
    Some(partitions)
}

