//! The groups of one open window (keys back to back in a byte arena, a hash table of slot
//! numbers, the accumulators per slot) and the open windows in start order, with the byte
//! encoding of a group key: what the window state is made of, without the rules of when rows
//! count and windows close (`state`).

use super::aggregate::Accumulator;
use crate::ack::Acks;
use crate::record::{BatchBuilder, FieldRef, Millis, Row};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// Most emptied window tables kept for reuse.
pub(super) const POOL_SIZE: usize = 16;

/// The groups of one open window. Keys are stored back to back in one byte arena and the hash
/// table holds slot numbers, so a window costs no allocation per group; emptied windows are
/// recycled, so steady state allocates nothing.
#[derive(Debug, Default)]
pub(super) struct Groups {
    pub(super) table: HashTable<u32>,
    pub(super) keys: Vec<u8>,
    pub(super) key_ends: Vec<u32>,
    /// `aggregates.len()` accumulators per slot.
    pub(super) accumulators: Vec<Accumulator>,
    /// Delivery tickets of the records counted here, passed on with the window's result.
    pub(super) acks: Acks,
}

/// The key of `slot` in a key arena.
fn key_at<'k>(keys: &'k [u8], key_ends: &[u32], slot: u32) -> &'k [u8] {
    let end = key_ends[slot as usize] as usize;
    let start = if slot == 0 {
        0
    } else {
        key_ends[slot as usize - 1] as usize
    };
    &keys[start..end]
}

impl Groups {
    pub(super) fn key(&self, slot: u32) -> &[u8] {
        key_at(&self.keys, &self.key_ends, slot)
    }

    pub(super) fn slots(&self) -> u32 {
        self.key_ends.len() as u32
    }

    /// The slot of `key`, adding it with fresh accumulators when new.
    pub(super) fn slot(&mut self, key: &[u8], per_slot: usize) -> u32 {
        let hash = FxBuildHasher.hash_one(key);
        let (keys, key_ends) = (&self.keys, &self.key_ends);
        if let Some(&slot) = self.table.find(hash, |&s| key_at(keys, key_ends, s) == key) {
            return slot;
        }
        let slot = self.slots();
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.accumulators
            .resize(self.accumulators.len() + per_slot, Accumulator::default());
        let (keys, key_ends) = (&self.keys, &self.key_ends);
        self.table.insert_unique(hash, slot, |&s| {
            FxBuildHasher.hash_one(key_at(keys, key_ends, s))
        });
        slot
    }

    pub(super) fn clear(&mut self) {
        self.table.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.accumulators.clear();
        self.acks = Acks::default();
    }
}

/// The open windows by start, in order. Rows mostly fall into the newest window, so that one is
/// found without a search; the rest by binary search (there are few: `size / slide` plus the
/// lateness span).
#[derive(Debug, Default)]
pub(super) struct OpenWindows(pub(super) VecDeque<(Millis, Groups)>);

impl OpenWindows {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The window starting at `start`, made by `new` when it is not open yet.
    pub(super) fn get_or_insert_with(
        &mut self,
        start: Millis,
        new: impl FnOnce() -> Groups,
    ) -> &mut Groups {
        let newest = self.0.back().map(|(s, _)| *s);
        let at = match newest {
            Some(newest) if newest == start => self.0.len() - 1,
            Some(newest) if newest > start => {
                match self.0.binary_search_by_key(&start, |(s, _)| *s) {
                    Ok(at) => at,
                    Err(at) => {
                        self.0.insert(at, (start, new()));
                        at
                    }
                }
            }
            _ => {
                self.0.push_back((start, new()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// The windows starting after `after` and at or before `through`.
    pub(super) fn starting_within(
        &mut self,
        after: Millis,
        through: Millis,
    ) -> impl Iterator<Item = &mut Groups> {
        let from = self.0.partition_point(|(s, _)| *s <= after);
        self.0
            .range_mut(from..)
            .take_while(move |(s, _)| *s <= through)
            .map(|(_, groups)| groups)
    }

    pub(super) fn first_start(&self) -> Option<Millis> {
        self.0.front().map(|(s, _)| *s)
    }

    pub(super) fn last_start(&self) -> Option<Millis> {
        self.0.back().map(|(s, _)| *s)
    }

    pub(super) fn pop_first(&mut self) -> Option<(Millis, Groups)> {
        self.0.pop_front()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(Millis, Groups)> {
        self.0.iter()
    }

    pub(super) fn remove(&mut self, start: Millis) -> Option<Groups> {
        let at = self.0.binary_search_by_key(&start, |(s, _)| *s).ok()?;
        self.0.remove(at).map(|(_, groups)| groups)
    }
}

/// Writes the group key of `row` into `out` as unambiguous bytes (type tag, length, content).
pub(super) fn encode_key(row: &Row<'_>, fields: &[Option<usize>], out: &mut Vec<u8>) {
    out.clear();
    for field in fields {
        if let Some(bytes) = field.and_then(|i| row.text_bytes(i)) {
            out.push(b's');
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
            continue;
        }
        match field.map_or(FieldRef::Null, |i| row.get(i)) {
            FieldRef::Null => out.push(b'n'),
            FieldRef::Bool(b) => out.extend_from_slice(&[b'b', u8::from(b)]),
            FieldRef::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            FieldRef::Float(f) => {
                out.push(b'f');
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            FieldRef::Str(s) => {
                out.push(b's');
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// Reads back the fields that [`encode_key`] wrote, appending them to the current row of `out`.
pub(super) fn decode_key(mut key: &[u8], out: &mut BatchBuilder) {
    pub(super) fn take<'k>(key: &mut &'k [u8], n: usize) -> &'k [u8] {
        let (head, tail) = key.split_at(n.min(key.len()));
        *key = tail;
        head
    }
    pub(super) fn eight(bytes: &[u8]) -> [u8; 8] {
        bytes.try_into().unwrap_or_default()
    }
    while let Some((&tag, rest)) = key.split_first() {
        key = rest;
        let field = match tag {
            b'b' => FieldRef::Bool(take(&mut key, 1) == [1]),
            b'i' => FieldRef::Int(i64::from_le_bytes(eight(take(&mut key, 8)))),
            b'f' => FieldRef::Float(f64::from_bits(u64::from_le_bytes(eight(take(&mut key, 8))))),
            b's' => {
                let len = u32::from_le_bytes(take(&mut key, 4).try_into().unwrap_or_default());
                // The bytes were text in the input batch, so they are valid UTF-8.
                FieldRef::Str(std::str::from_utf8(take(&mut key, len as usize)).unwrap_or_default())
            }
            _ => FieldRef::Null,
        };
        out.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Schema;
    use std::sync::Arc;

    #[test]
    pub(super) fn keys_round_trip_through_their_encoding() {
        let schema = Arc::new(Schema::new(["s", "i", "n"]));
        let mut b = BatchBuilder::with_capacity(Arc::clone(&schema), 1);
        b.push_str("四川");
        b.push(FieldRef::Int(-7));
        b.push(FieldRef::Null);
        b.end_row(0);
        let batch = b.build();
        let mut key = Vec::new();
        encode_key(&batch.row(0), &[Some(0), Some(1), Some(2), None], &mut key);
        let mut out = BatchBuilder::with_capacity(Arc::new(Schema::new(["a", "b", "c", "d"])), 1);
        decode_key(&key, &mut out);
        out.end_row(0);
        let decoded = out.build();
        let row = decoded.row(0);
        assert_eq!(
            (row.get(0), row.get(1), row.get(2), row.get(3)),
            (
                FieldRef::Str("四川"),
                FieldRef::Int(-7),
                FieldRef::Null,
                FieldRef::Null
            )
        );
    }
}
