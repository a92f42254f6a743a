//! The csv reader the `csv` source uses: any bytes as a file, with the header mode, delimiter,
//! quoting, line limit, column names and time column chosen by the first bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::sources::csv::{HeaderMode, ReadOptions, TimeUnit, Timestamps, read_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let Some((&batch, file)) = rest.split_first() else {
        return;
    };
    let options = ReadOptions {
        header: match knobs & 3 {
            0 => HeaderMode::Auto,
            1 => HeaderMode::Present,
            _ => HeaderMode::Absent,
        },
        columns: (knobs & 4 != 0).then(|| vec!["a".into(), "t".into(), "c".into()]),
        delimiter: if knobs & 8 != 0 { b';' } else { b',' },
        quoting: knobs & 16 == 0,
        max_line_bytes: if knobs & 32 != 0 { 64 } else { 1 << 20 },
    };
    let timestamps = if knobs & 64 != 0 {
        Timestamps::Field {
            name: "t".into(),
            index: None,
            unit: if knobs & 128 != 0 { TimeUnit::S } else { TimeUnit::Ms },
            future_tolerance: std::time::Duration::from_secs(3600),
        }
    } else {
        Timestamps::Replay {
            start_time: 0,
            ms_per_row: 100.0,
            row: 0,
        }
    };
    let _ = read_bytes(file, options, timestamps, usize::from(batch) + 1);
});
