//! What the dashboard shows: the last N points for browsers that connect late, and totals so far.

use crate::format::window_points::Point;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

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
    /// When the server sent it, epoch milliseconds with a fraction (for latency measurements).
    pub sent_at: f64,
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
            sent_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
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

    fn two_windows() -> Vec<Point> {
        let mut a = BTreeMap::new();
        a.insert("0".to_string(), 1.0);
        a.insert("1".to_string(), 6.0);
        let mut b = BTreeMap::new();
        b.insert("0".to_string(), 2.0);
        b.insert("2".to_string(), 5.0);
        vec![Point { t: 1000, values: a }, Point { t: 2000, values: b }]
    }

    #[test]
    fn tutorial_message_is_girl_comma_boy() {
        let p = two_windows();
        assert_eq!(tutorial_message(&p[0]), "1,6");
        assert_eq!(tutorial_message(&p[1]), "2,0");
    }

    #[test]
    fn the_board_keeps_the_last_points_and_all_totals() {
        let mut board = Board::new(1);
        for p in two_windows() {
            board.add(p);
        }
        let snapshot = board.snapshot();
        assert_eq!(snapshot.points.len(), 1);
        assert_eq!(snapshot.points[0].t, 2000);
        assert_eq!(snapshot.totals["0"], 3.0);
    }
}
