//! `weir gen nexmark`: the events of the Nexmark benchmark (an online auction), one CSV row per
//! event. Of every 50 events, 1 is a new person, 3 are new auctions and 46 are bids, as the
//! benchmark's generator has them; event time moves on by 1/`rate` of a second per event from
//! `start`. Bids go half to a "hot" auction (one of the newest few) and half to any of the last
//! 100 auctions; bidders and sellers likewise among the newest persons; prices spread over five
//! orders of magnitude. One row shape holds all three kinds: `event_type` (0 person, 1 auction,
//! 2 bid), `date_time` (epoch ms), then the columns of each kind, empty for the others. Streams
//! in constant memory; the same seed gives the same bytes.

use std::io::{self, Write};

/// The columns, in order (the header line the generator writes).
pub const NEXMARK_COLUMNS: [&str; 20] = [
    "event_type",
    "date_time",
    // person
    "id",
    "name",
    "email_address",
    "credit_card",
    "city",
    "state",
    // auction (its id is `id` too)
    "item_name",
    "description",
    "initial_bid",
    "reserve",
    "expires",
    "seller",
    "category",
    // bid
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
];

/// Of every `EPOCH` events: one person, then `AUCTIONS` auctions, then bids.
const EPOCH: u64 = 50;
const AUCTIONS: u64 = 3;
/// The first person's and the first auction's id.
const FIRST_ID: u64 = 1000;
/// Auctions a bid may go to: the newest this many.
const AUCTIONS_IN_FLIGHT: u64 = 100;
/// Persons a bid or an auction may come from: the newest this many.
const ACTIVE_PERSONS: u64 = 1000;
/// One in this many bids and auctions goes to the newest "hot" auctions and persons.
const HOT_RATIO: u64 = 2;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// What to generate.
pub struct NexmarkSpec {
    /// Number of events.
    pub events: u64,
    /// Random seed.
    pub seed: u64,
    /// Event time of the first event, epoch ms.
    pub start: i64,
    /// Events per second of event time.
    pub rate: u64,
    /// Write the header line.
    pub header: bool,
}

/// A small fast generator (xorshift64*), so the output depends only on the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// A price in cents, spread from 1.00 to 10,000.00 as 10^(0..6) × 100 is.
    fn price(&mut self) -> u64 {
        let exponent = (self.below(1_000_000) as f64 / 1_000_000.0) * 6.0;
        (10f64.powf(exponent) * 100.0).round() as u64
    }

    fn word(&mut self, out: &mut Vec<u8>, letters: u64) {
        for _ in 0..letters {
            out.push(b'a' + self.below(26) as u8);
        }
    }
}

/// How many events of each kind [`write_nexmark`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Persons.
    pub persons: u64,
    /// Auctions.
    pub auctions: u64,
    /// Bids.
    pub bids: u64,
}

/// Writes `spec.events` events to `out`.
pub fn write_nexmark(spec: &NexmarkSpec, out: &mut impl Write) -> io::Result<Written> {
    let mut rng = Rng(spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut written = Written::default();
    if spec.header {
        writeln!(out, "{}", NEXMARK_COLUMNS.join(","))?;
    }
    let rate = spec.rate.max(1);
    let mut line = Vec::with_capacity(256);
    for n in 0..spec.events {
        line.clear();
        let time = spec.start + (n * 1000 / rate) as i64;
        let epoch = n / EPOCH;
        let offset = n % EPOCH;
        // Persons and auctions made so far, this one included.
        let persons = epoch + 1;
        let auctions = epoch * AUCTIONS + offset.min(AUCTIONS);
        if offset == 0 {
            let id = FIRST_ID + epoch;
            write!(line, "0,{time},{id},")?;
            line.extend_from_slice(rng.pick(&FIRST_NAMES).as_bytes());
            line.push(b' ');
            line.extend_from_slice(rng.pick(&LAST_NAMES).as_bytes());
            line.push(b',');
            rng.word(&mut line, 7);
            line.extend_from_slice(b"@");
            rng.word(&mut line, 5);
            line.extend_from_slice(b".com,");
            for group in 0..4 {
                if group > 0 {
                    line.push(b' ');
                }
                write!(line, "{:04}", rng.below(10_000))?;
            }
            let (city, state) = (rng.pick(&CITIES), rng.pick(&STATES));
            write!(line, ",{city},{state},,,,,,,,,,,,")?;
            written.persons += 1;
        } else if offset <= AUCTIONS {
            let id = FIRST_ID + auctions - 1;
            let initial = rng.price();
            let reserve = initial + rng.price();
            let expires = time + 1 + rng.below(20_000) as i64;
            let seller = person(&mut rng, persons);
            let category = 10 + rng.below(5);
            write!(line, "1,{time},{id},,,,,,")?;
            rng.word(&mut line, 10);
            line.push(b',');
            rng.word(&mut line, 20);
            write!(
                line,
                ",{initial},{reserve},{expires},{seller},{category},,,,,"
            )?;
            written.auctions += 1;
        } else {
            let auction = if rng.below(HOT_RATIO) == 0 {
                // A hot auction: the newest of its group of HOT_RATIO.
                FIRST_ID + (auctions - 1) / HOT_RATIO * HOT_RATIO
            } else {
                FIRST_ID + auctions.saturating_sub(1 + rng.below(AUCTIONS_IN_FLIGHT.min(auctions)))
            };
            let bidder = person(&mut rng, persons);
            let price = rng.price();
            let channel = rng.below(CHANNELS.len() as u64);
            write!(
                line,
                "2,{time},,,,,,,,,,,,,,{auction},{bidder},{price},{},https://www.nexmark.com/",
                CHANNELS[channel as usize]
            )?;
            rng.word(&mut line, 5);
            line.extend_from_slice(b"/item.htm?query=1&channel_id=");
            write!(line, "{channel}")?;
            written.bids += 1;
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(written)
}

/// A person id among the `persons` made so far: one in [`HOT_RATIO`] a hot one (the newest of
/// its group), the others any of the newest [`ACTIVE_PERSONS`].
fn person(rng: &mut Rng, persons: u64) -> u64 {
    if rng.below(HOT_RATIO) == 0 {
        FIRST_ID + (persons - 1) / HOT_RATIO * HOT_RATIO
    } else {
        FIRST_ID + persons.saturating_sub(1 + rng.below(ACTIVE_PERSONS.min(persons)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(events: u64, seed: u64) -> (String, Written) {
        let spec = NexmarkSpec {
            events,
            seed,
            start: 1_700_000_000_000,
            rate: 10_000,
            header: true,
        };
        let mut out = Vec::new();
        let written = write_nexmark(&spec, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), written)
    }

    /// 1:3:46 of every 50 events, every row of the header's width, ids and references that
    /// exist when they are used, times moving on at the rate; the same seed, the same bytes.
    #[test]
    fn proportions_shapes_references_and_times() {
        let (text, written) = generate(10_000, 7);
        assert_eq!(
            written,
            Written {
                persons: 200,
                auctions: 600,
                bids: 9_200
            }
        );
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), NEXMARK_COLUMNS.join(","));
        let (mut persons, mut auctions) = (Vec::new(), Vec::new());
        for (n, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), NEXMARK_COLUMNS.len(), "{line}");
            let time: i64 = f[1].parse().unwrap();
            assert_eq!(time, 1_700_000_000_000 + n as i64 / 10, "{line}");
            match f[0] {
                "0" => persons.push(f[2].parse::<u64>().unwrap()),
                "1" => {
                    auctions.push(f[2].parse::<u64>().unwrap());
                    let seller: u64 = f[13].parse().unwrap();
                    assert!(persons.contains(&seller), "{line}");
                    let (initial, reserve): (u64, u64) =
                        (f[10].parse().unwrap(), f[11].parse().unwrap());
                    assert!((100..=100_000_000).contains(&initial) && reserve > initial);
                    assert!(f[12].parse::<i64>().unwrap() > time);
                }
                "2" => {
                    let auction: u64 = f[15].parse().unwrap();
                    let bidder: u64 = f[16].parse().unwrap();
                    assert!(auctions.contains(&auction), "{line}");
                    assert!(persons.contains(&bidder), "{line}");
                    assert!(f[17].parse::<u64>().unwrap() >= 100);
                }
                other => panic!("event type {other}"),
            }
        }
        let ids = |v: &[u64]| (v.first().copied(), v.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(ids(&persons), (Some(1000), true));
        assert_eq!(ids(&auctions), (Some(1000), true));
        assert_eq!(generate(10_000, 7).0, text, "same seed, same bytes");
        assert_ne!(generate(10_000, 8).0, text);
    }
}
