//! The physical limit for the in-memory count job: the csv crate alone reading every record of a
//! file into one reused `ByteRecord` on one core, with no counting, windows or channels.
//!
//! `cargo run --release --example csv_baseline -- FILE`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: csv_baseline FILE")?;
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_path(&path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows: u64 = 0;
    let mut bytes: u64 = 0;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
        bytes += record.as_slice().len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "{rows} rows ({bytes} field bytes) in {seconds:.3} s: {:.0} rows/s; {peak}",
        rows as f64 / seconds
    );
    Ok(())
}
