//! `shop.generate`: synthetic Taobao user-log rows (the real file's 11 columns), gender drawn
//! uniformly per row, event time advancing `1000 / event_rate` ms per row.

use serde::Deserialize;
use std::time::{Duration, Instant};
use weir_plugin::{BatchBuilder, Component, Host, Poll, Source, option};

const COLUMNS: [&str; 11] = [
    "user_id",
    "item_id",
    "cat_id",
    "merchant_id",
    "brand_id",
    "month",
    "day",
    "action",
    "age_range",
    "gender",
    "province",
];

const PROVINCES: [&str; 8] = [
    "北京市",
    "上海市",
    "广东",
    "浙江",
    "四川",
    "江苏",
    "山东",
    "湖北",
];

/// Options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    rows: u64,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_event_rate")]
    event_rate: f64,
    #[serde(default = "default_start_time")]
    start_time: i64,
    /// Rows per second of wall time; 0 for as fast as possible.
    #[serde(default)]
    rate: f64,
}

fn default_seed() -> u64 {
    1
}

fn default_event_rate() -> f64 {
    10.0
}

fn default_start_time() -> i64 {
    1_700_000_000_000
}

/// The running source.
pub struct Generate {
    config: Config,
    state: u64,
    produced: u64,
    started: Instant,
    out: BatchBuilder,
}

impl Generate {
    fn next(&mut self) -> u64 {
        // xorshift64*: small and fast; plenty for synthetic data.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Component for Generate {
    const NAME: &'static str = "generate";
    const DESCRIPTION: &'static str =
        "Synthetic Taobao user-log rows (11 columns), a fixed number, optionally paced";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[
        option("rows", "integer", "required", "how many rows to produce"),
        option(
            "seed",
            "integer",
            "1",
            "random seed; the same seed gives the same rows",
        ),
        option(
            "event_rate",
            "number",
            "10",
            "rows per second of event time",
        ),
        option(
            "start_time",
            "epoch ms",
            "1700000000000",
            "event time of the first row",
        ),
        option(
            "rate",
            "number",
            "0",
            "rows per second of wall time; 0 for as fast as possible",
        ),
    ];
    type Config = Config;

    fn check(config: &Config) -> Result<(), String> {
        if config.event_rate.is_nan() || config.event_rate <= 0.0 {
            return Err(format!(
                "event_rate must be above 0, found {}",
                config.event_rate
            ));
        }
        if config.rate < 0.0 {
            return Err(format!("rate must not be negative, found {}", config.rate));
        }
        Ok(())
    }

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(Generate {
            state: config.seed.max(1),
            config,
            produced: 0,
            started: Instant::now(),
            out: BatchBuilder::new(COLUMNS),
        })
    }
}

impl Source for Generate {
    fn poll(&mut self, max_rows: usize, host: &mut Host) -> Result<Poll, String> {
        let left = self.config.rows - self.produced;
        let mut count = (max_rows as u64).min(left);
        if self.config.rate > 0.0 {
            count = count.min(((self.config.rate / 20.0) as u64).max(1));
            let due = self.started
                + Duration::from_secs_f64((self.produced + count) as f64 / self.config.rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        for _ in 0..count {
            let r = self.next();
            let user = 100_000 + self.produced / 100;
            let time = self.config.start_time
                + (self.produced as f64 * 1000.0 / self.config.event_rate) as i64;
            let fields = [
                user.to_string(),
                (r % 1_113_166).to_string(),
                (r % 1_671).to_string(),
                (r % 4_995).to_string(),
                (r % 8_477).to_string(),
                "11".into(),
                "11".into(),
                if r % 100 < 87 { "0".into() } else { "2".into() },
                ((r >> 8) % 8).to_string(),
                ((r >> 16) % 3).to_string(),
                PROVINCES[((r >> 24) % PROVINCES.len() as u64) as usize].into(),
            ];
            for field in &fields {
                self.out.push_str(field);
            }
            self.out.end_row(time);
            self.produced += 1;
        }
        host.emit(&mut self.out)?;
        Ok(if self.produced >= self.config.rows {
            Poll::Finished
        } else {
            Poll::More
        })
    }
}
