//! A keyed transform run as several instances (see [`Parallel`]): a *router* in front sends each
//! record to the instance its key hashes to and every watermark to all of them; a *merge* behind
//! takes the instances' outputs and hands them on in event-time order once every instance has
//! passed them.
//!
//! Every key lives in exactly one instance, so an instance's output for a window holds only its
//! own groups and the merge just gathers them. The merge's watermark is the smallest over the
//! instances (each forwards its own after the output it belongs to), so when it passes a time,
//! every instance has emitted everything up to that time: a window comes out of the merge whole,
//! in one batch with the other windows closed by the same watermark, as from one instance. Each
//! instance sees the records of its keys in their original order, between the same watermarks,
//! so it drops exactly the late records one instance would drop. Only the order of groups within
//! a window may differ.
//!
//! Progress marks: an instance marks its output with how far it has emitted; the merge hands on
//! only what every instance has passed, so it marks what it hands on with its own watermark
//! instead (a restart counts windows up to the mark as emitted, and the instances that were ahead
//! had not been handed on yet).

use super::inputs::{InputEvent, Inputs};
use crate::record::{Batch, FieldRef, Millis, Row, Schema};
use crate::stage::Watermarks;
use crate::stage::{Output, Parallel, StageResult};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// Sends each record of `input` to the instance (`instances[k]`) its key hashes to, and every
/// watermark (the smallest over the input ports) to all of them.
pub async fn route(
    mut input: Inputs,
    mut instances: Vec<Output>,
    parallel: Parallel,
) -> StageResult {
    let mut watermarks = Watermarks::new(input.ports());
    let mut keys = KeyFields::new(parallel.key_fields);
    let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); instances.len()];
    while let Some(event) = input.next().await {
        let advanced = match event {
            InputEvent::Batch(_, batch) => {
                keys.split(&batch, &mut rows_of);
                for (instance, rows) in instances.iter_mut().zip(&mut rows_of) {
                    if rows.is_empty() {
                        continue;
                    }
                    let part = if rows.len() == batch.len() {
                        batch.clone()
                    } else {
                        batch.select(rows)
                    };
                    rows.clear();
                    if instance.send(part).await.is_err() {
                        return Ok(()); // an instance failed; the engine reports it
                    }
                }
                None
            }
            InputEvent::Watermark(port, t) => watermarks.observe(port, t),
            InputEvent::Ended(port) => watermarks.end(port),
        };
        if let Some(watermark) = advanced {
            for instance in &mut instances {
                if instance.send_watermark(watermark).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Takes the outputs of the instances (one port each) and hands them on to `output` in
/// event-time order once the smallest of the instances' watermarks has passed them; at the end,
/// everything left. `mark` is the stage's name in progress marks.
pub async fn merge(mut input: Inputs, mut output: Output, mark: Arc<str>) -> StageResult {
    let mut watermarks = Watermarks::new(input.ports());
    let mut held: Vec<Batch> = Vec::new();
    while let Some(event) = input.next().await {
        let advanced = match event {
            InputEvent::Batch(_, batch) => {
                held.push(batch);
                None
            }
            InputEvent::Watermark(port, t) => watermarks.observe(port, t),
            InputEvent::Ended(port) => watermarks.end(port),
        };
        let Some(watermark) = advanced else { continue };
        if let Some(mut batch) = take_through(&mut held, watermark) {
            let mut acks = batch.take_acks();
            acks.replace_mark(&mark, watermark);
            batch.attach_acks(acks);
            if output.send(batch).await.is_err() {
                return Ok(());
            }
        }
        if output.send_watermark(watermark).await.is_err() {
            return Ok(());
        }
    }
    // Every instance has ended: what is held goes on as the instances marked it.
    if let Some(batch) = take_through(&mut held, Millis::MAX) {
        let _ = output.send(batch).await;
    }
    Ok(())
}

/// Removes from `held` the rows at or before `watermark` (each held batch is in time order) and
/// returns them as one batch in time order (stable: an instance's rows keep their order).
fn take_through(held: &mut Vec<Batch>, watermark: Millis) -> Option<Batch> {
    let mut parts = Vec::new();
    held.retain_mut(|batch| {
        let due = batch.times().partition_point(|&t| t <= watermark);
        if due == batch.len() {
            let emptied = batch.slice(0..0);
            parts.push(std::mem::replace(batch, emptied));
            false
        } else {
            if due > 0 {
                parts.push(batch.slice(0..due));
                *batch = batch.slice(due..batch.len());
            }
            true
        }
    });
    let merged = Batch::concat(parts)?;
    let times = merged.times();
    if times.is_sorted() {
        return Some(merged);
    }
    let mut order: Vec<u32> = (0..merged.len() as u32).collect();
    order.sort_by_key(|&i| times[i as usize]);
    Some(merged.select(&order))
}

/// The key fields resolved against the schema flowing in.
struct KeyFields {
    names: Vec<String>,
    schema: Option<Arc<Schema>>,
    positions: Vec<Option<usize>>,
}

impl KeyFields {
    fn new(names: Vec<String>) -> Self {
        KeyFields {
            names,
            schema: None,
            positions: Vec::new(),
        }
    }

    /// Puts the index of every row of `batch` into the list of the instance its key hashes to.
    fn split(&mut self, batch: &Batch, rows_of: &mut [Vec<u32>]) {
        if !self
            .schema
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, batch.schema()))
        {
            self.positions = self
                .names
                .iter()
                .map(|name| batch.schema().index_of(name))
                .collect();
            self.schema = Some(Arc::clone(batch.schema()));
        }
        let instances = rows_of.len() as u64;
        for (index, row) in batch.rows().enumerate() {
            let k = key_hash(&row, &self.positions) % instances;
            rows_of[k as usize].push(index as u32);
        }
    }
}

/// A hash of a row's key: equal for rows whose key fields hold equal values of equal types (what
/// makes them one group).
fn key_hash(row: &Row<'_>, positions: &[Option<usize>]) -> u64 {
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    for position in positions {
        if let Some(bytes) = position.and_then(|i| row.text_bytes(i)) {
            hasher.write_u8(b's');
            hasher.write(bytes);
            continue;
        }
        match position.map_or(FieldRef::Null, |i| row.get(i)) {
            FieldRef::Null => hasher.write_u8(b'n'),
            FieldRef::Bool(b) => hasher.write(&[b'b', u8::from(b)]),
            FieldRef::Int(i) => {
                hasher.write_u8(b'i');
                hasher.write_i64(i);
            }
            FieldRef::Float(f) => {
                hasher.write_u8(b'f');
                hasher.write_u64(f.to_bits());
            }
            FieldRef::Str(s) => {
                hasher.write_u8(b's');
                hasher.write(s.as_bytes());
            }
        }
    }
    // Fx's low bits are weak for short keys; fold the high half in.
    let hash = hasher.finish();
    hash ^ (hash >> 32)
}
