//! What the dashboard shows: window records turned into chart points, the last N points for
//! browsers that connect late, and totals so far.

use crate::record::{Batch, FieldRef, Millis};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// One chart point: a closed window's counts by series key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Window end, epoch ms (the x axis).
    pub t: Millis,
    /// Value per series key.
    pub values: BTreeMap<String, f64>,
}

/// Which fields of a window record are the series key and the value.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// Series key field; default: the first field that is not `window_start`/`window_end`.
    pub key: Option<String>,
    /// Value field; default: the last field.
    pub value: Option<String>,
}

/// Turns a batch of window records into points, one per window (records of one window are
/// consecutive, as the window transform emits them). Records without a numeric value are
/// skipped and counted in the second element.
pub fn points(batch: &Batch, fields: &Fields) -> (Vec<Point>, u64) {
    let schema = batch.schema();
    let payload: Vec<usize> = (0..schema.len())
        .filter(|&i| !matches!(schema.name(i), "window_start" | "window_end"))
        .collect();
    let key = match &fields.key {
        Some(name) => schema.index_of(name),
        None => payload.first().copied(),
    };
    let value = match &fields.value {
        Some(name) => schema.index_of(name),
        None => payload.last().copied(),
    };
    let end = schema.index_of("window_end");
    let (Some(key), Some(value)) = (key, value) else {
        return (Vec::new(), batch.len() as u64);
    };
    let mut points: Vec<Point> = Vec::new();
    let mut skipped = 0;
    let mut text = String::new();
    for row in batch.rows() {
        let t = match end.map(|i| row.get(i)) {
            Some(FieldRef::Int(t)) => t,
            _ => row.event_time() + 1,
        };
        let Some(number) = row.get(value).as_number() else {
            skipped += 1;
            continue;
        };
        text.clear();
        row.get(key).write_text(&mut text);
        if points.last().is_none_or(|p| p.t != t) {
            points.push(Point { t, values: BTreeMap::new() });
        }
        let point = points.last_mut().expect("pushed above");
        *point.values.entry(text.clone()).or_insert(0.0) += number.as_f64();
    }
    (points, skipped)
}

/// The last `capacity` points and the running totals per key.
#[derive(Debug)]
pub struct Board {
    capacity: usize,
    history: VecDeque<Point>,
    totals: BTreeMap<String, f64>,
}

/// A point with the totals after it, as sent to browsers.
#[derive(Clone, Debug, Serialize)]
pub struct Update<'a> {
    /// The new point.
    pub point: &'a Point,
    /// Totals over every window so far.
    pub totals: &'a BTreeMap<String, f64>,
}

/// Everything a browser needs when it connects.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The last points, oldest first.
    pub points: Vec<Point>,
    /// Totals over every window so far.
    pub totals: BTreeMap<String, f64>,
}

impl Board {
    /// An empty board keeping `capacity` points.
    pub fn new(capacity: usize) -> Board {
        Board {
            capacity,
            history: VecDeque::with_capacity(capacity),
            totals: BTreeMap::new(),
        }
    }

    /// Adds a point; returns the update to broadcast.
    pub fn add(&mut self, point: Point) -> Update<'_> {
        for (key, value) in &point.values {
            *self.totals.entry(key.clone()).or_insert(0.0) += value;
        }
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(point);
        Update {
            point: self.history.back().expect("pushed above"),
            totals: &self.totals,
        }
    }

    /// What a browser that connects now should see.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            points: self.history.iter().cloned().collect(),
            totals: self.totals.clone(),
        }
    }
}

/// The tutorial app's `test_message` payload: `"<girl>,<boy>"`, the values of keys `0` and `1`.
pub fn tutorial_message(point: &Point) -> String {
    let value = |k: &str| point.values.get(k).copied().unwrap_or(0.0);
    format!("{},{}", value("0"), value("1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, Schema};
    use std::sync::Arc;

    fn windows() -> Batch {
        let schema = Arc::new(Schema::new(["window_start", "window_end", "gender", "count"]));
        let mut b = BatchBuilder::with_capacity(schema, 4);
        for (start, g, n) in [(0, "0", 1), (0, "1", 6), (1000, "0", 2), (1000, "2", 5)] {
            b.push(FieldRef::Int(start));
            b.push(FieldRef::Int(start + 1000));
            b.push_str(g);
            b.push(FieldRef::Int(n));
            b.end_row(start + 999);
        }
        b.build()
    }

    #[test]
    fn window_records_become_one_point_per_window() {
        let (points, skipped) = points(&windows(), &Fields::default());
        assert_eq!(skipped, 0);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].t, 1000);
        assert_eq!(points[0].values["1"], 6.0);
        assert_eq!(points[1].values["2"], 5.0);
        assert_eq!(tutorial_message(&points[0]), "1,6");
        assert_eq!(tutorial_message(&points[1]), "2,0");
    }

    #[test]
    fn the_board_keeps_the_last_points_and_all_totals() {
        let mut board = Board::new(1);
        let (points, _) = points(&windows(), &Fields::default());
        for p in points {
            board.add(p);
        }
        let snapshot = board.snapshot();
        assert_eq!(snapshot.points.len(), 1);
        assert_eq!(snapshot.points[0].t, 2000);
        assert_eq!(snapshot.totals["0"], 3.0);
    }
}
