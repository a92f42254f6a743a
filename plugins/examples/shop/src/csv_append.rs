//! `shop.csv_append`: appends every record to a CSV file (a header first when the file is new),
//! a drop-in replacement for the dashboard when the counts should go to a spreadsheet.

use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use weir_plugin::{Batch, Component, Field, Host, Sink, option};

/// Options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    path: String,
    #[serde(default = "default_true")]
    header: bool,
}

fn default_true() -> bool {
    true
}

/// The running sink.
pub struct CsvAppend {
    file: BufWriter<File>,
    write_header: bool,
    line: String,
}

impl Component for CsvAppend {
    const NAME: &'static str = "csv_append";
    const DESCRIPTION: &'static str =
        "Appends records to a CSV file (header first when the file is new)";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[
        option(
            "path",
            "string",
            "required",
            "the CSV file; created if missing",
        ),
        option(
            "header",
            "bool",
            "true",
            "write the field names first when the file is empty",
        ),
    ];
    type Config = Config;

    fn check(config: &Config) -> Result<(), String> {
        if config.path.trim().is_empty() {
            return Err("path must not be empty".into());
        }
        Ok(())
    }

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|e| format!("cannot open {}: {e}", config.path))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        Ok(CsvAppend {
            file: BufWriter::new(file),
            write_header: config.header && empty,
            line: String::new(),
        })
    }
}

impl Sink for CsvAppend {
    fn write(&mut self, batch: &Batch<'_>, _host: &mut Host) -> Result<(), String> {
        if self.write_header {
            self.line.clear();
            for (i, name) in batch.names().iter().enumerate() {
                push_cell(&mut self.line, i, name);
            }
            self.line.push('\n');
            self.file
                .write_all(self.line.as_bytes())
                .map_err(|e| e.to_string())?;
            self.write_header = false;
        }
        for row in 0..batch.len() {
            self.line.clear();
            for column in 0..batch.names().len() {
                let text = match batch.get(row, column) {
                    Field::Null => String::new(),
                    Field::Bool(b) => b.to_string(),
                    Field::Int(i) => i.to_string(),
                    Field::Float(f) => f.to_string(),
                    Field::Str(s) => s.to_string(),
                };
                push_cell(&mut self.line, column, &text);
            }
            self.line.push('\n');
            self.file
                .write_all(self.line.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        self.file.flush().map_err(|e| e.to_string())
    }

    fn finish(&mut self, _host: &mut Host) -> Result<(), String> {
        self.file.flush().map_err(|e| e.to_string())
    }
}

/// Appends one CSV cell, quoted when it holds a comma, quote or line break.
fn push_cell(line: &mut String, index: usize, text: &str) {
    if index > 0 {
        line.push(',');
    }
    if text.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&text.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(text);
    }
}
