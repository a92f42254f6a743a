//! Plugin components as engine stages: the adapters that implement the same `Source`,
//! `Transform` and `Sink` traits as the built-ins by calling through the C ABI.
//!
//! Calls into a plugin are synchronous and may block, so transforms and sinks make them with
//! `block_in_place` (the runtime moves other tasks off the thread meanwhile) and sources run
//! their whole loop on the blocking pool.

use super::host::{CallContext, HOST_API, LentNames, view_of};
use super::library::Component;
use crate::record::{Batch, Schema};
use crate::stage::{
    BuildContext, DropReason, Rejected, Rejects, Sink, Source, SourceContext, Stage, StageError,
    StageKind, StageMetrics, StageResult, Transform, blocking,
};
use async_trait::async_trait;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_plugin_abi::{ComponentVTable, Handle, HostApi, Status, Str};

/// Rows a plugin source may emit per poll.
const SOURCE_BATCH_ROWS: usize = 2048;

/// A plugin stage's failure, as the plugin reported it, with the library it came from.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin returned an error status with this message.
    #[error("{message}")]
    Failed {
        /// The plugin library.
        library: PathBuf,
        /// The plugin's message.
        message: String,
    },
    /// The plugin panicked (the SDK caught it at the boundary).
    #[error("panicked: {message}")]
    Panicked {
        /// The plugin library.
        library: PathBuf,
        /// The panic message.
        message: String,
    },
}

impl From<PluginError> for StageError {
    fn from(error: PluginError) -> Self {
        StageError::External(Box::new(error))
    }
}

/// Creates an instance of `component` of the plugin at `library` and wraps it in the adapter
/// for its kind.
pub fn create(
    component: &Component,
    library: &Path,
    config: &str,
    build: &BuildContext,
) -> Result<Stage, StageError> {
    let label = build.path.as_str();
    let mut out = Vec::new();
    let mut schema = None;
    let mut cx = CallContext::new(label, &mut out, &mut schema, None);
    let mut handle: Handle = std::ptr::null_mut();
    // SAFETY: the text, context and handle slot outlive the call.
    let status = unsafe {
        (component.vtable.create)(
            Str::new(config),
            &HOST_API,
            (&raw mut cx).cast::<c_void>(),
            &raw mut handle,
        )
    };
    if status != Status::OK || handle.is_null() {
        let message = cx.error_message("the plugin could not create the stage");
        let library = library.to_path_buf();
        return Err(if status == Status::PANIC {
            PluginError::Panicked { library, message }
        } else {
            PluginError::Failed { library, message }
        }
        .into());
    }
    let instance = Instance {
        vtable: component.vtable,
        handle,
        label: label.to_string(),
        library: library.to_path_buf(),
        schema: None,
        names: None,
        rejects: build.rejects.clone(),
        metrics: Arc::clone(&build.metrics),
    };
    Ok(match component.kind {
        StageKind::Source => Stage::Source(Box::new(PluginSource(instance))),
        StageKind::Transform => Stage::Transform(Box::new(PluginTransform {
            held: component
                .emitted_through
                .map(|emitted_through| Held::new(emitted_through, build, component.name)),
            instance,
        })),
        StageKind::Sink => Stage::Sink(Box::new(PluginSink(instance))),
    })
}

/// A live plugin component instance; destroyed (by the plugin) when dropped.
struct Instance {
    vtable: &'static ComponentVTable,
    handle: Handle,
    label: String,
    library: PathBuf,
    schema: Option<Arc<Schema>>,
    names: Option<LentNames>,
    /// Where the records the plugin rejects go (`<id>.errors`).
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
}

// The ABI lets the host move an instance between threads as long as one thread calls it at a
// time, which `&mut self` guarantees.
unsafe impl Send for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the handle came from `create` and is destroyed exactly once.
        unsafe { (self.vtable.destroy)(self.handle) }
    }
}

impl Instance {
    /// Makes one call, collecting emitted batches into `out`; errors and panics become the
    /// stage's error.
    fn call(
        &mut self,
        out: &mut Vec<Batch>,
        f: impl FnOnce(&'static ComponentVTable, Handle, *const HostApi, *mut c_void) -> Status,
    ) -> StageResult<Status> {
        self.call_lending(None, out, f)
    }

    /// [`call`](Self::call) with `lent` as the batch `emit_rows` selects from.
    fn call_lending(
        &mut self,
        lent: Option<&Batch>,
        out: &mut Vec<Batch>,
        f: impl FnOnce(&'static ComponentVTable, Handle, *const HostApi, *mut c_void) -> Status,
    ) -> StageResult<Status> {
        let mut cx = CallContext::new(&self.label, out, &mut self.schema, lent);
        let status = f(
            self.vtable,
            self.handle,
            &HOST_API,
            (&raw mut cx).cast::<c_void>(),
        );
        let failure = match status {
            Status::OK | Status::FINISHED => None,
            Status::PANIC => Some(PluginError::Panicked {
                library: self.library.clone(),
                message: cx.error_message("(no message)"),
            }),
            _ => Some(PluginError::Failed {
                library: self.library.clone(),
                message: cx.error_message("the plugin failed without a message"),
            }),
        };
        let rejected = (
            std::mem::take(&mut cx.rejected_rows),
            std::mem::take(&mut cx.rejected),
        );
        drop(cx); // it borrows `self.schema`
        self.take_rejections(lent, &rejected.0, &rejected.1);
        match failure {
            None => Ok(status),
            Some(failure) => Err(failure.into()),
        }
    }

    /// Counts what the plugin rejected during a call and sends it to the errors output: rows
    /// of the lent batch with their fields (and the batch's tickets), other input as the
    /// plugin described it.
    fn take_rejections(
        &self,
        lent: Option<&Batch>,
        rows: &[(usize, String)],
        other: &[(String, String, String)],
    ) {
        let count = (rows.len() + other.len()) as u64;
        if count == 0 {
            return;
        }
        self.metrics.add_dropped(DropReason::Invalid, count);
        if let Some(lent) = lent
            && !rows.is_empty()
        {
            let rows: Vec<(usize, &str)> = rows.iter().map(|(i, r)| (*i, r.as_str())).collect();
            self.rejects.reject_rows(lent, &rows);
        }
        for (reason, at, record) in other {
            self.rejects.reject(Rejected { reason, at, record });
        }
    }

    /// Lends `batch` to the plugin's `process`.
    fn process(&mut self, batch: &Batch, out: &mut Vec<Batch>) -> StageResult {
        let view = view_of(
            batch,
            LentNames::for_schema(&mut self.names, batch.schema()),
        );
        // SAFETY: the view borrows `batch` and the cached names, both alive during the call.
        blocking(|| {
            self.call_lending(Some(batch), out, |v, h, api, cx| unsafe {
                (v.process)(h, &view, api, cx)
            })
        })
        .map(|_| ())
    }
}

struct PluginTransform {
    instance: Instance,
    /// For a plugin that keeps state: the input tickets it still holds.
    held: Option<Held>,
}

/// The delivery tickets of the input a stateful plugin transform holds (see
/// `ComponentExtension::emitted_through`): each input batch's, with its latest event time, kept
/// until the plugin's output goes past that time; then they leave with its output, marked
/// "emitted through" so a restarted run hands the plugin only later records — exactly once, as
/// for the built-in window.
struct Held {
    emitted_through: unsafe extern "C-unwind" fn(Handle) -> i64,
    /// (latest event time of an input batch, its tickets), oldest first.
    tickets: std::collections::VecDeque<(i64, crate::ack::Acks)>,
    /// The plugin's last answer.
    through: i64,
    /// The stage's progress mark.
    mark: Arc<str>,
    /// How far an earlier run's output was committed, until read at the first batch.
    resumed: Option<Arc<crate::resume::Resumed>>,
    /// Records at or before this were accounted for by an earlier run.
    replay_through: Option<i64>,
    /// Records of an earlier run's output not handed to the plugin again.
    replayed: u64,
}

impl Held {
    fn new(
        emitted_through: unsafe extern "C-unwind" fn(Handle) -> i64,
        build: &BuildContext,
        component: &str,
    ) -> Held {
        let resumed = build.resources.get::<crate::resume::Resumed>();
        // Marks of another component are not this one's: switching the plugin is refused.
        resumed.declare(&build.path, format!("plugin component={component}"));
        Held {
            emitted_through,
            tickets: std::collections::VecDeque::new(),
            through: i64::MIN,
            mark: Arc::from(build.path.as_str()),
            resumed: Some(resumed),
            replay_through: None,
            replayed: 0,
        }
    }

    /// `batch` without the records an earlier run's committed output already accounts for.
    fn unseen(&mut self, batch: Batch) -> Batch {
        if let Some(resumed) = self.resumed.take() {
            self.replay_through = resumed.through(&self.mark);
            if let Some(through) = self.replay_through {
                tracing::info!(
                    "{}: going on after the output committed through {through}",
                    self.mark
                );
            }
        }
        let Some(through) = self.replay_through else {
            return batch;
        };
        if batch.times().iter().all(|&t| t > through) {
            return batch;
        }
        let kept = batch.retain(|row| row.event_time() > through);
        self.replayed += (batch.len() - kept.len()) as u64;
        kept.with_acks(batch.acks().clone())
    }

    /// After a call: asks the plugin how far its output goes and lets the tickets of the input
    /// wholly before that leave with what the call emitted (`out[first_new..]`), marked.
    fn release(&mut self, handle: Handle, out: &mut [Batch], first_new: usize) {
        // SAFETY: a live handle, called from the one thread calling this instance; the SDK
        // catches panics (answering "none").
        let through = unsafe { (self.emitted_through)(handle) };
        // An answer going back would take back what was released: keep the furthest.
        self.through = self.through.max(through);
        let mut released = crate::ack::Acks::default();
        while self
            .tickets
            .front()
            .is_some_and(|(latest, _)| *latest <= self.through)
        {
            let (_, acks) = self.tickets.pop_front().expect("checked");
            released.absorb(acks);
        }
        if self.through == i64::MIN {
            return;
        }
        released.mark(Arc::clone(&self.mark), self.through);
        match out[first_new..].last_mut() {
            Some(last) => {
                let mut acks = last.take_acks();
                acks.absorb(released);
                last.attach_acks(acks);
            }
            // Nothing to carry them: they settle here; the mark waits for the next output.
            None => drop(released),
        }
    }
}

impl Transform for PluginTransform {
    /// A stateless plugin's output carries the input's delivery tickets: what it emits during
    /// `process` derives from that input. A stateful one's ([`Held`]) carries the tickets of
    /// the input its output has gone past.
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let first_new = out.len();
        if let Some(held) = &mut self.held {
            batch = held.unseen(batch);
            let latest = batch.times().iter().copied().max().unwrap_or(i64::MIN);
            held.tickets.push_back((latest, batch.take_acks()));
            if !batch.is_empty() {
                self.instance.process(&batch, out)?;
            }
            held.release(self.instance.handle, out, first_new);
            return Ok(());
        }
        self.instance.process(&batch, out)?;
        let acks = batch.take_acks();
        if !acks.is_empty() {
            for emitted in &mut out[first_new..] {
                emitted.attach_acks(acks.clone());
            }
        }
        Ok(())
    }

    /// Stopped before its input ended (Ctrl-C, SIGTERM): a stateful plugin is not asked to emit
    /// what it holds — that would be a partial result — and the tickets of what it holds are
    /// given up, so the next run reads that input again and completes it. A stateless one
    /// finishes as usual.
    fn stop(&mut self, out: &mut Vec<Batch>) -> StageResult {
        let Some(held) = &mut self.held else {
            return self.finish(out);
        };
        let holding = held.tickets.len();
        for (_, acks) in held.tickets.drain(..) {
            acks.abandon();
        }
        if holding > 0 {
            tracing::info!(
                "{}: stopping with {holding} input batches not yet wholly emitted; the next run \
                 reads them again",
                held.mark
            );
        }
        Ok(())
    }

    fn output_watermark(&self, input: crate::record::Millis) -> crate::record::Millis {
        match &self.held {
            // What it emits later may be as old as the first record it still holds.
            Some(held) => input.min(held.through),
            None => input,
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        let millis = self.instance.vtable.tick_interval_millis;
        (millis > 0).then(|| Duration::from_millis(millis))
    }

    fn tick(&mut self, out: &mut Vec<Batch>) -> StageResult {
        let first_new = out.len();
        // SAFETY: a live handle; no borrowed data crosses.
        blocking(|| {
            self.instance
                .call(out, |v, h, api, cx| unsafe { (v.tick)(h, api, cx) })
        })?;
        if let Some(held) = &mut self.held {
            held.release(self.instance.handle, out, first_new);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        let first_new = out.len();
        // SAFETY: as for `tick`.
        blocking(|| {
            self.instance
                .call(out, |v, h, api, cx| unsafe { (v.finish)(h, api, cx) })
        })?;
        if let Some(held) = &mut self.held {
            held.release(self.instance.handle, out, first_new);
            if held.replayed > 0 {
                tracing::info!(
                    "{}: {} records of output an earlier run committed were not handed to the \
                     plugin again",
                    held.mark,
                    held.replayed
                );
            }
        }
        Ok(())
    }
}

struct PluginSink(Instance);

#[async_trait]
impl Sink for PluginSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        let written = self.0.process(&batch, &mut Vec::new());
        if written.is_err() {
            batch.acks().fail();
        }
        written
    }

    async fn finish(&mut self) -> StageResult {
        // SAFETY: a live handle; no borrowed data crosses.
        blocking(|| {
            self.0.call(&mut Vec::new(), |v, h, api, cx| unsafe {
                (v.finish)(h, api, cx)
            })
        })
        .map(|_| ())
    }
}

struct PluginSource(Instance);

#[async_trait]
impl Source for PluginSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult {
        let mut instance = self.0;
        let polled = tokio::task::spawn_blocking(move || {
            let SourceContext {
                mut output,
                shutdown,
                ..
            } = cx;
            let rejects = instance.rejects.clone();
            let mut out = Vec::new();
            while !shutdown.is_requested() {
                // SAFETY: a live handle; no borrowed data crosses.
                let status = instance.call(&mut out, |v, h, api, cx| unsafe {
                    (v.poll)(h, SOURCE_BATCH_ROWS, api, cx)
                })?;
                for batch in out.drain(..) {
                    if output.blocking_send(batch).is_err() {
                        return Ok(());
                    }
                }
                rejects.blocking_flush();
                if status == Status::FINISHED {
                    break;
                }
            }
            Ok(())
        })
        .await;
        polled.map_err(|e| StageError::joined("the plugin source's thread", e))?
    }
}
