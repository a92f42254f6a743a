//! `weir gen user-log`: writes a synthetic Taobao Double-11 user log with the columns and
//! distributions measured on the real samples (see data/README.md): rows grouped by user; gender,
//! age range and province drawn per row (uniform); mostly clicks; months 05–11 with the 11-11
//! spike; an empty brand id now and then. Streams in constant memory; the same seed gives the same
//! bytes.

use std::io::{self, Write};

/// The user_log.csv columns, in order (the header line the generator writes).
pub const USER_LOG_COLUMNS: [&str; 11] = [
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

/// The 34 provinces as they appear in the log.
const PROVINCES: [&str; 34] = [
    "北京市",
    "天津市",
    "上海市",
    "重庆市",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
];

/// Days in months 05..=11 (the log's range; 11-12 is past the sale and absent).
const MONTH_DAYS: [(u8, u8); 7] = [
    (5, 31),
    (6, 30),
    (7, 31),
    (8, 31),
    (9, 30),
    (10, 31),
    (11, 11),
];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct UserLogSpec {
    /// Number of rows.
    pub rows: u64,
    /// Random seed.
    pub seed: u64,
    /// Whether to write the header line first.
    pub header: bool,
}

/// SplitMix64: small, fast and good enough for synthetic data; not for cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Writes the log to `out`. Returns the per-gender row counts (index = gender digit).
pub fn write_user_log(spec: UserLogSpec, out: &mut impl Write) -> io::Result<[u64; 3]> {
    let mut rng = Rng(spec.seed);
    let mut line = Vec::with_capacity(128);
    let mut genders = [0u64; 3];
    if spec.header {
        writeln!(out, "{}", USER_LOG_COLUMNS.join(","))?;
    }
    let mut user = 1000 + rng.below(1000);
    let mut left_for_user = 0;
    for _ in 0..spec.rows {
        if left_for_user == 0 {
            user += 1 + rng.below(3);
            left_for_user = 1 + rng.below(259); // about 130 rows per user, as in the full log
        }
        left_for_user -= 1;
        let (month, day) = date(&mut rng);
        let action = match rng.below(1000) {
            0..870 => 0,
            870..872 => 1,
            872..952 => 2,
            _ => 3,
        };
        let gender = rng.below(3);
        genders[gender as usize] += 1;
        line.clear();
        write!(
            line,
            "{user},{},{},{},",
            1 + rng.below(1_113_166),
            1 + rng.below(1_671),
            1 + rng.below(4_995)
        )?;
        if !rng.chance(2) {
            write!(line, "{}", 1 + rng.below(8_477))?;
        }
        writeln!(
            line,
            ",{month:02},{day:02},{action},{},{gender},{}",
            rng.below(8),
            PROVINCES[rng.below(PROVINCES.len() as u64) as usize]
        )?;
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(genders)
}

/// A date: 19 % on 11-11, 5 % on 11-10, the rest spread over 05-01 .. 11-11.
fn date(rng: &mut Rng) -> (u8, u8) {
    match rng.below(100) {
        0..19 => (11, 11),
        19..24 => (11, 10),
        _ => {
            let (month, days) = MONTH_DAYS[rng.below(MONTH_DAYS.len() as u64) as usize];
            (month, 1 + rng.below(u64::from(days)) as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(rows: u64, seed: u64) -> (Vec<u8>, [u64; 3]) {
        let mut out = Vec::new();
        let genders = write_user_log(
            UserLogSpec {
                rows,
                seed,
                header: true,
            },
            &mut out,
        )
        .unwrap();
        (out, genders)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(generate(1000, 7).0, generate(1000, 7).0);
        assert_ne!(generate(1000, 7).0, generate(1000, 8).0);
    }

    #[test]
    fn rows_have_the_log_shape_and_distributions() {
        let (bytes, genders) = generate(30_000, 1);
        let text = String::from_utf8(bytes).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), USER_LOG_COLUMNS.join(","));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 30_000);
        assert!(rows.iter().all(|r| r.len() == 11));
        let share = |n: usize| n as f64 / rows.len() as f64;
        for (g, &n) in genders.iter().enumerate() {
            let counted = rows.iter().filter(|r| r[9] == g.to_string()).count();
            assert_eq!(counted as u64, n);
            assert!(
                (share(counted) - 1.0 / 3.0).abs() < 0.02,
                "gender {g}: {counted}"
            );
        }
        let clicks = rows.iter().filter(|r| r[7] == "0").count();
        assert!((share(clicks) - 0.87).abs() < 0.02);
        let double_eleven = rows.iter().filter(|r| r[5] == "11" && r[6] == "11").count();
        assert!(
            (0.17..0.25).contains(&share(double_eleven)),
            "{}",
            share(double_eleven)
        );
        let provinces: std::collections::HashSet<&str> = rows.iter().map(|r| r[10]).collect();
        assert_eq!(provinces.len(), 34);
        // Grouped by user: user ids never decrease.
        assert!(
            rows.windows(2)
                .all(|w| w[0][0].parse::<u64>().unwrap() <= w[1][0].parse::<u64>().unwrap())
        );
    }
}
