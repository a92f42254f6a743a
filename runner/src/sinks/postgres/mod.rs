//! Sink `postgres`: upserts records into a PostgreSQL table, one statement and one transaction
//! per batch, keyed by `key` (by default the window and its group fields), so a window written
//! again after a crash replaces itself. The progress marks the batch carries are written in the
//! same transaction ([`progress`]) and handed back to the stages when a run starts, so a window
//! open across the restart point is neither skipped nor written again from half its input:
//! exactly once into the table, with no transaction manager.
//!
//! A batch's tickets go (and the source commits) once its transaction has committed. A failure
//! that may pass (the connection lost, the server restarting, a serialization failure) is tried
//! again with a new connection until `retry_for`; a row the server refuses for its data (a value
//! that does not fit its column) goes to `<sink>.errors` with the server's message, and the other
//! rows of its batch are written.

mod progress;
mod sql;

use crate::record::{Batch, Schema};
use crate::resume::Resumed;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, OptionDoc, OptionIssue, Rejects, Sink, Stage,
    StageConfig, StageError, StageKind, StageMetrics, StageResult,
};
use crate::time::DurationSpec;
use async_trait::async_trait;
use progress::ProgressTable;
use serde::Deserialize;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;

crate::stage_options! {
    /// Options of the `postgres` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PostgresConfig, documented in OPTIONS {
        url: String => OptionDoc::of("string", "required", "the server: postgres://user:password@host:port/database, or \"host=… user=… dbname=…\" (a password from the environment: ${PGPASSWORD})"),
        table: String => OptionDoc::of("string", "required", "the table, `name` or `schema.name`"),
        key: Option<Vec<String>> => OptionDoc::of("[string]", "the fields but window_end and the last", "the fields whose values say which row a record replaces (the table's primary key)"),
        #[serde(default = "default_true")]
        create_table: bool => OptionDoc::of("bool", "true", "create the table from the first batch's fields if it does not exist (integers bigint, floats double precision, booleans boolean, the rest text; the key its primary key)"),
        #[serde(default = "default_progress_table")]
        progress_table: String => OptionDoc::of("string", "\"weir_progress\"", "the table keeping how far each stage's output was written, in the same transaction as the rows"),
        job: Option<String> => OptionDoc::of("string", "\"weir.<pipeline file name>\"", "whose progress rows these are: pipelines writing one database need distinct jobs"),
        #[serde(default = "default_connect_timeout")]
        connect_timeout: DurationSpec => OptionDoc::of("duration", "\"10s\"", "how long connecting may take"),
        #[serde(default = "default_retry_for")]
        retry_for: DurationSpec => OptionDoc::of("duration", "\"10m\"", "how long a batch that fails in a way that may pass (connection lost, server restarting) is tried again before the run fails"),
    }
}

fn default_true() -> bool {
    true
}
fn default_progress_table() -> String {
    "weir_progress".into()
}
fn default_connect_timeout() -> DurationSpec {
    DurationSpec(Duration::from_secs(10))
}
fn default_retry_for() -> DurationSpec {
    DurationSpec(Duration::from_secs(600))
}

/// The first pause before a failed batch is tried again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The `postgres` sink type.
pub fn factory() -> Builtin<PostgresConfig> {
    Builtin::new(
        StageKind::Sink,
        "postgres",
        "Upserts records into a PostgreSQL table, exactly once with its progress in the same \
         transaction",
        OPTIONS,
    )
}

impl BuiltinConfig for PostgresConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if let Err(e) = tokio_postgres::Config::from_str(&self.url) {
            issues.push(OptionIssue::new(
                "url",
                format!("not a PostgreSQL address: {e}"),
            ));
        }
        if let Err(why) = sql::table_name(&self.table) {
            issues.push(OptionIssue::new("table", why));
        }
        if let Err(why) = sql::table_name(&self.progress_table) {
            issues.push(OptionIssue::new("progress_table", why));
        }
        if self.key.as_ref().is_some_and(Vec::is_empty) {
            issues.push(OptionIssue::new("key", "name at least one field"));
        }
        issues
    }
}

/// Why the `postgres` sink failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresSinkError {
    /// The server could not be reached, or refused to log in.
    #[error("{sink}: cannot connect to PostgreSQL at {server}: {why}")]
    Connect {
        /// The sink's path.
        sink: String,
        /// Host and port, as configured (no password).
        server: String,
        /// The client's error.
        why: String,
    },
    /// The server refused something the sink cannot mend by trying again.
    #[error("{sink}: {doing}: {why}{hint}")]
    Refused {
        /// The sink's path.
        sink: String,
        /// What was being done, e.g. `writing to "windows"`.
        doing: String,
        /// The server's message.
        why: String,
        /// What to do, with a leading `; `, or empty.
        hint: String,
    },
    /// The records do not fit the table.
    #[error("{sink}: {why}")]
    Mismatch {
        /// The sink's path.
        sink: String,
        /// What does not fit.
        why: String,
    },
    /// Stored progress was made under other options than this run's.
    #[error(
        "{sink}: the progress earlier runs stored (table {table}, job {job}) for `{stage}` was \
         made with {before}, and this run has {now}; going on would mix the two. Put the option \
         back, or start over with `weir run --reset`"
    )]
    OtherMeaning {
        /// The sink's path.
        sink: String,
        /// The progress table.
        table: String,
        /// The job.
        job: String,
        /// The stage.
        stage: String,
        /// The stored meaning.
        before: String,
        /// This run's.
        now: String,
    },
    /// A batch kept failing for `retry_for`.
    #[error(
        "{sink}: a batch could not be written in {attempts} attempts over {tried:?} (last: \
         {last}); it stays uncommitted for the next run (raise `retry_for` to wait longer)"
    )]
    GaveUp {
        /// The sink's path.
        sink: String,
        /// Attempts made.
        attempts: u32,
        /// How long it tried.
        tried: Duration,
        /// The last failure.
        last: String,
    },
}

impl From<PostgresSinkError> for StageError {
    fn from(e: PostgresSinkError) -> Self {
        StageError::External(Box::new(e))
    }
}

impl StageConfig for PostgresConfig {
    fn commits_progress(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let connect = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| StageError::Input(format!("{}: `url`: {e}", cx.path)))?;
        let table = sql::table_name(&self.table).map_err(StageError::Input)?;
        let progress = ProgressTable {
            table: sql::table_name(&self.progress_table).map_err(StageError::Input)?,
            job: self
                .job
                .clone()
                .unwrap_or_else(|| progress::default_job(&cx.pipeline)),
        };
        let resumed = cx.resources.get::<Resumed>();
        resumed.sink_keeps_marks();
        let mut sink = PostgresSink {
            server: server_of(&connect),
            connect,
            connect_timeout: self.connect_timeout.0,
            client: None,
            table,
            key: self.key.clone(),
            create_table: self.create_table,
            prepared: None,
            progress,
            resumed,
            retry_for: self.retry_for.0,
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
            refused_rows: 0,
        };
        // The marks must be in place before any stage handles a record: load them now.
        crate::stage::blocking(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StageError::io("start", std::path::Path::new("a runtime"), e))?;
            runtime.block_on(sink.load_progress())
        })?;
        Ok(Stage::Sink(Box::new(sink)))
    }
}

/// `host:port` of a connection config, for messages (never the password).
fn server_of(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or("localhost".to_string(), |h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

struct PostgresSink {
    connect: tokio_postgres::Config,
    connect_timeout: Duration,
    server: String,
    client: Option<tokio_postgres::Client>,
    table: String,
    key: Option<Vec<String>>,
    create_table: bool,
    prepared: Option<Prepared>,
    progress: ProgressTable,
    resumed: Arc<Resumed>,
    retry_for: Duration,
    label: String,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
    refused_rows: u64,
}

/// The statements for one record schema on the current connection.
struct Prepared {
    schema: Arc<Schema>,
    /// Per column written: the record field it takes.
    fields: Vec<usize>,
    /// The key's record fields.
    key_fields: Vec<usize>,
    upsert: tokio_postgres::Statement,
    marks: tokio_postgres::Statement,
}

/// How an attempt failed.
enum Failure {
    /// Worth another attempt on a new connection.
    Passing(String),
    /// Not worth another attempt.
    Fatal(Box<PostgresSinkError>),
}

/// Whether `e` may pass: the connection broke, the server is going away or short of
/// resources, or the transaction lost a race.
fn may_pass(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            matches!(class, "08" | "40" | "53" | "57" | "58")
        }
    }
}

/// Whether `e` is about one row's data (a value that does not fit, a constraint it breaks).
fn about_the_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|code| matches!(&code.code()[..2], "22" | "23"))
}

/// The server's message for `e`, with its detail.
fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut cause: &dyn std::error::Error = e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            if cause.to_string() == e.to_string() {
                e.to_string()
            } else {
                format!("{e}: {cause}")
            }
        }
    }
}

impl PostgresSink {
    /// Connects unless connected (a new connection forgets the prepared statements).
    async fn connected(&mut self) -> Result<(), Failure> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.prepared = None;
        let mut config = self.connect.clone();
        config.connect_timeout(self.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("weir");
        }
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| Failure::Passing(format!("cannot connect: {}", message(&e))))?;
        let label = self.label.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("{label}: the connection ended: {e}");
            }
        });
        self.client = Some(client);
        Ok(())
    }

    /// Creates the progress table if needed and hands the stored marks to the run's stages.
    async fn load_progress(&mut self) -> Result<(), StageError> {
        let (sink, server) = (self.label.clone(), self.server.clone());
        let connect_error = |why: String| PostgresSinkError::Connect {
            sink: sink.clone(),
            server: server.clone(),
            why,
        };
        match self.connected().await {
            Ok(()) => {}
            Err(Failure::Passing(why)) => return Err(connect_error(why).into()),
            Err(Failure::Fatal(e)) => return Err((*e).into()),
        }
        let client = self.client.as_ref().expect("connected above");
        let refused = |doing: &str, e: tokio_postgres::Error| PostgresSinkError::Refused {
            sink: sink.clone(),
            doing: doing.to_string(),
            why: message(&e),
            hint: String::new(),
        };
        // Two runs creating it at once: one wins, the other finds it made.
        if let Err(e) = client.batch_execute(&self.progress.create()).await
            && e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        {
            return Err(refused("creating the progress table", e).into());
        }
        if self.resumed.starts_over() {
            tracing::info!(
                "{}: starting over (--reset): the progress stored in {} is ignored, and the \
                 first commit replaces it",
                self.label,
                self.progress.table
            );
            return Ok(());
        }
        let rows = client
            .query(&self.progress.select(), &[&self.progress.job])
            .await
            .map_err(|e| refused("reading the progress table", e))?;
        let stored: Vec<(String, String, i64)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        match progress::restore(&self.resumed, &stored) {
            Ok(0) => Ok(()),
            Ok(n) => {
                self.resumed.source_resumes();
                tracing::info!(
                    "{}: going on from {n} progress marks stored in {} (job {})",
                    self.label,
                    self.progress.table,
                    self.progress.job
                );
                Ok(())
            }
            Err(other) => Err(PostgresSinkError::OtherMeaning {
                sink: self.label.clone(),
                table: self.progress.table.clone(),
                job: self.progress.job.clone(),
                stage: other.stage,
                before: other.before,
                now: other.now,
            }
            .into()),
        }
    }

    fn refused(&self, doing: &str, e: &tokio_postgres::Error, hint: &str) -> Failure {
        refused(&self.label, doing, e, hint)
    }

    fn mismatch(&self, why: String) -> Failure {
        Failure::Fatal(Box::new(PostgresSinkError::Mismatch {
            sink: self.label.clone(),
            why,
        }))
    }

    /// The key fields for `schema`: `key` as configured, else every field but `window_end` and
    /// the last.
    fn key_names(&self, schema: &Schema) -> Vec<String> {
        match &self.key {
            Some(key) => key.clone(),
            None => {
                let names: Vec<&str> = schema.names().collect();
                let kept: Vec<String> = names[..names.len().saturating_sub(1)]
                    .iter()
                    .filter(|n| **n != "window_end")
                    .map(|n| n.to_string())
                    .collect();
                if kept.is_empty() {
                    names.iter().map(|n| n.to_string()).collect()
                } else {
                    kept
                }
            }
        }
    }

    /// The statements for `batch`'s schema, creating the table first if asked to.
    async fn prepare(&mut self, batch: &Batch) -> Result<(), Failure> {
        if self
            .prepared
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(&p.schema, batch.schema()))
        {
            return Ok(());
        }
        let schema = Arc::clone(batch.schema());
        let key = self.key_names(&schema);
        let key_fields = key
            .iter()
            .map(|k| {
                schema.index_of(k).ok_or_else(|| {
                    self.mismatch(format!(
                        "the key field `{k}` is not among the records' fields ({})",
                        schema.names().collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.create_table {
            let columns: Vec<(String, String)> = schema
                .names()
                .enumerate()
                .map(|(i, name)| {
                    let sample = batch
                        .rows()
                        .map(|r| r.get(i))
                        .find(|v| !matches!(v, crate::record::FieldRef::Null))
                        .unwrap_or(crate::record::FieldRef::Null);
                    (name.to_string(), sql::column_type(sample).to_string())
                })
                .collect();
            let create = sql::create_table(&self.table, &columns, &key);
            self.connected().await?;
            let client = self.client.as_ref().expect("connected above");
            if let Err(e) = client.batch_execute(&create).await
                && e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            {
                return Err(self.refused(&format!("creating {}", self.table), &e, ""));
            }
        }
        self.connected().await?;
        let client = self.client.as_ref().expect("connected above");
        let rows = match client.query(sql::COLUMNS_OF, &[&self.table]).await {
            Ok(rows) => rows,
            Err(e) => {
                let hint = "create the table, or set `create_table = true`";
                return Err(self.refused(
                    &format!("reading the columns of {}", self.table),
                    &e,
                    hint,
                ));
            }
        };
        let table_columns: HashMap<String, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for (i, name) in schema.names().enumerate() {
            match table_columns.get(name) {
                Some(kind) => {
                    columns.push((name.to_string(), kind.clone()));
                    fields.push(i);
                }
                None => {
                    let mut have: Vec<&String> = table_columns.keys().collect();
                    have.sort();
                    return Err(self.mismatch(format!(
                        "table {} has no column `{name}` (it has {}): add the column, or leave \
                         the field out with a `select`",
                        self.table,
                        have.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        let upsert_sql = sql::upsert(&self.table, &columns, &key);
        let marks_sql = self.progress.upsert();
        self.connected().await?;
        let client = self.client.as_ref().expect("connected above");
        let upsert = match client.prepare(&upsert_sql).await {
            Ok(statement) => statement,
            Err(e) => {
                let hint = format!(
                    "the table needs a primary key or a unique index on exactly ({}) — the \
                     sink's `key`",
                    key.join(", ")
                );
                return Err(self.refused(
                    &format!("preparing the upsert into {}", self.table),
                    &e,
                    &hint,
                ));
            }
        };
        let marks = client
            .prepare(&marks_sql)
            .await
            .map_err(|e| self.refused("preparing the progress update", &e, ""))?;
        self.prepared = Some(Prepared {
            schema,
            fields,
            key_fields,
            upsert,
            marks,
        });
        Ok(())
    }

    /// The rows of `batch` to write, as one text array per column: rows with a null key are
    /// rejected, and of rows with the same key the last wins (one statement cannot change a
    /// row twice).
    fn columns(&mut self, batch: &Batch) -> (Vec<Vec<Option<String>>>, Vec<usize>) {
        let prepared = self.prepared.as_ref().expect("prepared before");
        let mut last_of_key: HashMap<Vec<Option<String>>, usize> = HashMap::new();
        let mut null_keys = Vec::new();
        for (index, row) in batch.rows().enumerate() {
            let key: Vec<Option<String>> = prepared
                .key_fields
                .iter()
                .map(|&f| sql::text(row.get(f)))
                .collect();
            if key.iter().any(Option::is_none) {
                null_keys.push(index);
                continue;
            }
            last_of_key.insert(key, index);
        }
        let mut kept: Vec<usize> = last_of_key.into_values().collect();
        kept.sort_unstable();
        let columns = prepared
            .fields
            .iter()
            .map(|&f| {
                kept.iter()
                    .map(|&i| sql::text(batch.row(i).get(f)))
                    .collect()
            })
            .collect();
        if !null_keys.is_empty() {
            let refused: Vec<(usize, &str)> = null_keys
                .iter()
                .map(|&i| (i, "a key field is null"))
                .collect();
            self.reject(batch, &refused);
        }
        (columns, kept)
    }

    fn reject(&mut self, batch: &Batch, rows: &[(usize, &str)]) {
        self.refused_rows += rows.len() as u64;
        self.metrics
            .add_dropped(DropReason::Invalid, rows.len() as u64);
        self.rejects.reject_rows(batch, rows);
    }

    /// One attempt at writing `batch` with its marks in one transaction.
    async fn attempt(&mut self, batch: &Batch) -> Result<(), Failure> {
        self.prepare(batch).await?;
        let (columns, kept) = self.columns(batch);
        let marks = ProgressTable::rows(batch.acks().marks(), &self.resumed.meanings());
        self.connected().await?;
        let mut client = self.client.take().expect("connected above");
        let prepared = self.prepared.as_ref().expect("prepared above");
        let result = write_batch(
            &mut client,
            prepared,
            &Rows {
                columns: &columns,
                kept: &kept,
            },
            &self.progress.job,
            &marks,
            &Doing {
                label: &self.label,
                table: &self.table,
            },
        )
        .await;
        self.client = Some(client);
        let refused_rows = result?;
        if !refused_rows.is_empty() {
            let rows: Vec<(usize, &str)> = refused_rows
                .iter()
                .map(|(i, why)| (*i, why.as_str()))
                .collect();
            tracing::warn!(
                "{}: {} refused {} rows (first: {}); they go to {}.errors",
                self.label,
                self.table,
                rows.len(),
                rows[0].1,
                self.label.rsplit('.').next().unwrap_or(&self.label)
            );
            self.reject(batch, &rows);
        }
        Ok(())
    }
}

/// The rows of a batch to write: one text array per column, and which batch row each entry is.
struct Rows<'a> {
    columns: &'a [Vec<Option<String>>],
    kept: &'a [usize],
}

/// Which sink writes to which table, for messages.
struct Doing<'a> {
    label: &'a str,
    table: &'a str,
}

impl Doing<'_> {
    fn failed(&self, doing: &str, e: &tokio_postgres::Error) -> Failure {
        refused(self.label, doing, e, "")
    }

    fn writing(&self, e: &tokio_postgres::Error) -> Failure {
        self.failed(&format!("writing to {}", self.table), e)
    }
}

/// `e` as a failure while doing `doing`: passing if it may pass, else fatal with `hint`.
fn refused(label: &str, doing: &str, e: &tokio_postgres::Error, hint: &str) -> Failure {
    if may_pass(e) {
        return Failure::Passing(message(e));
    }
    Failure::Fatal(Box::new(PostgresSinkError::Refused {
        sink: label.to_string(),
        doing: doing.to_string(),
        why: message(e),
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        },
    }))
}

/// Writes `rows` and the `marks` (stages, meanings, positions) in one transaction; returns the
/// rows the server refused for their data (batch index, message), left out of it.
async fn write_batch(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    rows: &Rows<'_>,
    job: &str,
    marks: &(Vec<String>, Vec<String>, Vec<i64>),
    doing: &Doing<'_>,
) -> Result<Vec<(usize, String)>, Failure> {
    let passing = |e: tokio_postgres::Error| Failure::Passing(message(&e));
    let params: Vec<&(dyn ToSql + Sync)> = rows
        .columns
        .iter()
        .map(|c| c as &(dyn ToSql + Sync))
        .collect();
    let tx = client.transaction().await.map_err(passing)?;
    let whole = if rows.kept.is_empty() {
        Ok(0)
    } else {
        tx.execute(&prepared.upsert, &params).await
    };
    let mut refused_rows = Vec::new();
    let tx = match whole {
        Ok(_) => tx,
        Err(e) if about_the_data(&e) => {
            // Find the rows the server refuses, one by one, and write the others.
            drop(tx);
            let mut tx = client.transaction().await.map_err(passing)?;
            for (n, &index) in rows.kept.iter().enumerate() {
                let one: Vec<Vec<Option<String>>> =
                    rows.columns.iter().map(|c| vec![c[n].clone()]).collect();
                let params: Vec<&(dyn ToSql + Sync)> =
                    one.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                let savepoint = tx.savepoint("row").await.map_err(passing)?;
                match savepoint.execute(&prepared.upsert, &params).await {
                    Ok(_) => savepoint.commit().await.map_err(passing)?,
                    Err(e) if about_the_data(&e) => {
                        refused_rows.push((index, message(&e)));
                        savepoint.rollback().await.map_err(passing)?;
                    }
                    Err(e) => return Err(doing.writing(&e)),
                }
            }
            tx
        }
        Err(e) => return Err(doing.writing(&e)),
    };
    let (stages, meanings, through) = marks;
    if !stages.is_empty() {
        tx.execute(&prepared.marks, &[&job, stages, meanings, through])
            .await
            .map_err(|e| doing.failed("storing the progress marks", &e))?;
    }
    tx.commit().await.map_err(passing)?;
    Ok(refused_rows)
}

#[async_trait]
impl Sink for PostgresSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.attempt(&batch).await {
                Ok(()) => {
                    if attempts > 1 {
                        tracing::info!(
                            "{}: written to {} at attempt {attempts}",
                            self.label,
                            self.table
                        );
                    }
                    return Ok(());
                }
                Err(Failure::Fatal(e)) => {
                    batch.acks().fail();
                    return Err((*e).into());
                }
                Err(Failure::Passing(why)) => {
                    // Whatever the connection was doing, start the next attempt on a new one.
                    self.client = None;
                    let tried = started.elapsed();
                    if tried >= self.retry_for {
                        batch.acks().fail();
                        return Err(PostgresSinkError::GaveUp {
                            sink: self.label.clone(),
                            attempts,
                            tried,
                            last: why,
                        }
                        .into());
                    }
                    if attempts == 1 {
                        tracing::warn!(
                            "{}: writing to {} at {} failed ({why}); trying again for up to {:?}",
                            self.label,
                            self.table,
                            self.server,
                            self.retry_for
                        );
                    }
                    tokio::time::sleep(pause.min(self.retry_for.saturating_sub(tried))).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    async fn finish(&mut self) -> StageResult {
        if self.refused_rows > 0 {
            tracing::info!(
                "{}: {} rows refused by {}",
                self.label,
                self.refused_rows,
                self.table
            );
        }
        Ok(())
    }
}
