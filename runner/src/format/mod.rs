//! Record formats shared by stages of several kinds: lines of JSON or the tutorial's `seed`
//! arrays (`lines`, used by the console and file sinks and the Kafka codecs), and window records
//! read as chart points (`window_points`, used by the dashboard and Prometheus sinks).

pub mod lines;
pub mod window_points;
