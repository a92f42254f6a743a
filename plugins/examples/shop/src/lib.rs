//! Example plugin `shop`, one component of each kind:
//! - `shop.label` (transform): replaces a gender code with a readable label;
//! - `shop.csv_append` (sink): appends records to a CSV file, a drop-in for the dashboard;
//! - `shop.generate` (source): synthetic Taobao user-log rows;
//! - `shop.distinct_buyers` (transform that keeps state): distinct buyers per group per window,
//!   exactly once through restarts.

mod csv_append;
mod distinct_buyers;
mod generate;
mod label;

weir_plugin::export_plugin!(
    name: "shop",
    version: env!("CARGO_PKG_VERSION"),
    components: [
        transform(label::Label),
        transform(distinct_buyers::DistinctBuyers),
        sink(csv_append::CsvAppend),
        source(generate::Generate),
    ],
);
