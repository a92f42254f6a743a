//! `shop.distinct_buyers` (stateful transform): how many distinct buyers (`user_id`) each group
//! (`group_by`, e.g. `action`) had in each tumbling window of `size_ms`. A window closes when a
//! record at or past its end arrives (plus `lateness_ms`), or at the end of input; a record of a
//! window already closed is rejected to `<id>.errors`.
//!
//! It keeps its windows between calls, so it declares `KEEPS_STATE` and says how far its output
//! goes (`emitted_through`: the end of the last closed window, less one): the host then keeps the
//! input's delivery tickets until the window they belong to is out, and after a restart hands it
//! only the records of windows not yet committed — the same exactly-once contract as the built-in
//! window, with no snapshot of the sets.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use weir_plugin::{Batch, BatchBuilder, Component, Field, Host, Transform, option};

/// Options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    size_ms: i64,
    #[serde(default = "default_group_by")]
    group_by: String,
    #[serde(default = "default_user")]
    user_field: String,
    #[serde(default)]
    lateness_ms: i64,
}

fn default_group_by() -> String {
    "action".into()
}

fn default_user() -> String {
    "user_id".into()
}

/// The running transform: open windows by start, each with its groups' sets of users.
pub struct DistinctBuyers {
    config: Config,
    open: BTreeMap<i64, BTreeMap<String, BTreeSet<String>>>,
    /// Every window ending at or before this has been emitted.
    closed_through: i64,
    /// The newest event time seen.
    newest: i64,
    out: BatchBuilder,
}

impl Component for DistinctBuyers {
    const NAME: &'static str = "distinct_buyers";
    const DESCRIPTION: &'static str = "Distinct buyers per group per tumbling window (a stateful example: exactly once through restarts)";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[
        option(
            "size_ms",
            "integer",
            "required",
            "window length in milliseconds",
        ),
        option(
            "group_by",
            "string",
            "\"action\"",
            "the field whose values are counted apart",
        ),
        option(
            "user_field",
            "string",
            "\"user_id\"",
            "the field naming the buyer",
        ),
        option(
            "lateness_ms",
            "integer",
            "0",
            "how long after its end a window waits for late records",
        ),
    ];
    type Config = Config;

    fn check(config: &Config) -> Result<(), String> {
        if config.size_ms <= 0 {
            return Err("size_ms must be positive".into());
        }
        if config.lateness_ms < 0 {
            return Err("lateness_ms must not be negative".into());
        }
        Ok(())
    }

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        let out = BatchBuilder::new([
            "window_start".to_string(),
            "window_end".to_string(),
            config.group_by.clone(),
            "buyers".to_string(),
        ]);
        Ok(DistinctBuyers {
            config,
            open: BTreeMap::new(),
            closed_through: i64::MIN,
            newest: i64::MIN,
            out,
        })
    }
}

fn text(field: Field<'_>) -> String {
    match field {
        Field::Str(s) => s.to_string(),
        Field::Int(i) => i.to_string(),
        Field::Float(f) => f.to_string(),
        Field::Bool(b) => b.to_string(),
        Field::Null => String::new(),
    }
}

impl DistinctBuyers {
    /// Emits every open window ending at or before `through`.
    fn close(&mut self, through: i64, host: &mut Host) -> Result<(), String> {
        let size = self.config.size_ms;
        let closing: Vec<i64> = self
            .open
            .range(..=through.saturating_sub(size))
            .map(|(start, _)| *start)
            .collect();
        if closing.is_empty() {
            self.closed_through = self.closed_through.max(through);
            return Ok(());
        }
        for start in closing {
            let groups = self.open.remove(&start).unwrap_or_default();
            for (group, users) in groups {
                self.out.push(Field::Int(start));
                self.out.push(Field::Int(start + size));
                self.out.push_str(&group);
                self.out.push(Field::Int(users.len() as i64));
                self.out.end_row(start + size - 1);
            }
        }
        self.closed_through = self.closed_through.max(through);
        host.emit(&mut self.out)
    }
}

impl Transform for DistinctBuyers {
    const KEEPS_STATE: bool = true;

    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        let size = self.config.size_ms;
        let group = batch.index_of(&self.config.group_by);
        let user = batch.index_of(&self.config.user_field);
        let (Some(group), Some(user)) = (group, user) else {
            for row in 0..batch.len() {
                host.reject_row(row, "no group_by or user_field field")?;
            }
            return Ok(());
        };
        for row in 0..batch.len() {
            let t = batch.time(row);
            let start = t.div_euclid(size) * size;
            if start + size <= self.closed_through {
                host.reject_row(row, "its window was already emitted")?;
                continue;
            }
            self.open
                .entry(start)
                .or_default()
                .entry(text(batch.get(row, group)))
                .or_default()
                .insert(text(batch.get(row, user)));
            self.newest = self.newest.max(t);
        }
        // A window ends once a record at or past its end (and the lateness) has come.
        if self.newest > i64::MIN {
            let through = self.newest.saturating_sub(self.config.lateness_ms);
            let through = through.div_euclid(size) * size;
            self.close(through, host)?;
        }
        Ok(())
    }

    fn finish(&mut self, host: &mut Host) -> Result<(), String> {
        self.close(i64::MAX, host)
    }

    fn emitted_through(&self) -> i64 {
        // Records before the end of every emitted window are in the output.
        if self.closed_through == i64::MIN {
            i64::MIN
        } else {
            self.closed_through.saturating_sub(1)
        }
    }
}
