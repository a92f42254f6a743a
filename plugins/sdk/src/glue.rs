//! The `extern "C-unwind"` entry points behind each component's vtable: config parsing with
//! positions, panic catching, and the calls into the safe traits.

use crate::{Batch, Component, Host, Poll, Sink, Source, Transform};
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use weir_plugin_abi::{
    BatchView, ComponentExtension, ComponentVTable, Handle, HostApi, Kind, Status, Str,
};

/// Runs `body`, turning an error into [`Status::ERROR`] and a panic into [`Status::PANIC`],
/// each reported to the host.
fn guarded(host: &mut Host, body: impl FnOnce(&mut Host) -> Result<Status, String>) -> Status {
    match catch_unwind(AssertUnwindSafe(|| body(host))) {
        Ok(Ok(status)) => status,
        Ok(Err(message)) => {
            host.error(-1, &message);
            Status::ERROR
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            host.error(-1, &message); // the host adds "panicked:" for Status::PANIC
            Status::PANIC
        }
    }
}

/// Parses and checks a config; on failure reports it (with the byte offset when known).
fn config<T: Component>(text: Str, host: &mut Host) -> Result<T::Config, Status> {
    // SAFETY: the host passes valid text for the duration of the call.
    let bytes = unsafe { text.as_bytes() };
    let Ok(text) = std::str::from_utf8(bytes) else {
        host.error(-1, "config is not UTF-8");
        return Err(Status::ERROR);
    };
    match toml::from_str::<T::Config>(text) {
        Ok(config) => match T::check(&config) {
            Ok(()) => Ok(config),
            Err(message) => {
                host.error(-1, &message);
                Err(Status::ERROR)
            }
        },
        Err(e) => {
            let offset = e.span().map_or(-1, |span| span.start as i64);
            host.error(offset, e.message().trim());
            Err(Status::ERROR)
        }
    }
}

unsafe extern "C-unwind" fn validate<T: Component>(
    text: Str,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    let mut host = Host::new(api, ctx);
    guarded(&mut host, |host| {
        Ok(config::<T>(text, host).map_or_else(|status| status, |_| Status::OK))
    })
}

unsafe extern "C-unwind" fn create<T: Component>(
    text: Str,
    api: *const HostApi,
    ctx: *mut c_void,
    out: *mut Handle,
) -> Status {
    let mut host = Host::new(api, ctx);
    guarded(&mut host, |host| {
        let config = match config::<T>(text, host) {
            Ok(config) => config,
            Err(status) => return Ok(status),
        };
        let instance = T::new(config, host)?;
        // SAFETY: the host passes a valid place for the handle.
        unsafe { *out = Box::into_raw(Box::new(instance)).cast() };
        Ok(Status::OK)
    })
}

/// The instance behind a handle.
///
/// # Safety
/// `handle` came from `create::<T>` and is used by one thread at a time.
unsafe fn instance<'a, T>(handle: Handle) -> &'a mut T {
    // SAFETY: the caller's contract.
    unsafe { &mut *handle.cast::<T>() }
}

/// Runs `body` on the instance behind `handle`, errors and panics turned into statuses.
///
/// # Safety
/// `handle` came from `create::<T>` and is used by one thread at a time; `api` and `ctx` are what
/// the host passed to the current call.
unsafe fn on_instance<T>(
    handle: Handle,
    api: *const HostApi,
    ctx: *mut c_void,
    body: impl FnOnce(&mut T, &mut Host) -> Result<Status, String>,
) -> Status {
    let mut host = Host::new(api, ctx);
    // SAFETY: the caller's contract.
    let this = unsafe { instance::<T>(handle) };
    guarded(&mut host, |host| body(this, host))
}

fn ok(_: ()) -> Status {
    Status::OK
}

unsafe extern "C-unwind" fn process_transform<T: Transform>(
    handle: Handle,
    batch: *const BatchView,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    // SAFETY: the host lends a valid view and a handle from `create` for this call.
    unsafe {
        let batch = Batch::new(&*batch);
        on_instance::<T>(handle, api, ctx, |this, host| {
            this.process(&batch, host).map(ok)
        })
    }
}

unsafe extern "C-unwind" fn write_sink<T: Sink>(
    handle: Handle,
    batch: *const BatchView,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    // SAFETY: as in `process_transform`.
    unsafe {
        let batch = Batch::new(&*batch);
        on_instance::<T>(handle, api, ctx, |this, host| {
            this.write(&batch, host).map(ok)
        })
    }
}

unsafe extern "C-unwind" fn poll_source<T: Source>(
    handle: Handle,
    max_rows: usize,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    let status = |poll| match poll {
        Poll::More => Status::OK,
        Poll::Finished => Status::FINISHED,
    };
    // SAFETY: a handle from `create`, for this call.
    unsafe {
        on_instance::<T>(handle, api, ctx, |this, host| {
            this.poll(max_rows, host).map(status)
        })
    }
}

unsafe extern "C-unwind" fn tick_transform<T: Transform>(
    handle: Handle,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    // SAFETY: a handle from `create`, for this call.
    unsafe { on_instance::<T>(handle, api, ctx, |this, host| this.tick(host).map(ok)) }
}

unsafe extern "C-unwind" fn finish_transform<T: Transform>(
    handle: Handle,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    // SAFETY: a handle from `create`, for this call.
    unsafe {
        on_instance::<T>(handle, api, ctx, |this, host| {
            Transform::finish(this, host).map(ok)
        })
    }
}

unsafe extern "C-unwind" fn finish_sink<T: Sink>(
    handle: Handle,
    api: *const HostApi,
    ctx: *mut c_void,
) -> Status {
    // SAFETY: a handle from `create`, for this call.
    unsafe {
        on_instance::<T>(handle, api, ctx, |this, host| {
            Sink::finish(this, host).map(ok)
        })
    }
}

unsafe extern "C-unwind" fn nothing(
    _handle: Handle,
    _api: *const HostApi,
    _ctx: *mut c_void,
) -> Status {
    Status::OK
}

unsafe extern "C-unwind" fn no_batches(
    _: Handle,
    _: *const BatchView,
    _: *const HostApi,
    _: *mut c_void,
) -> Status {
    Status::OK
}

unsafe extern "C-unwind" fn no_polls(
    _: Handle,
    _: usize,
    _: *const HostApi,
    _: *mut c_void,
) -> Status {
    Status::FINISHED
}

unsafe extern "C-unwind" fn destroy<T>(handle: Handle) {
    // A panic in a destructor has nowhere to go; it must not cross the boundary.
    // SAFETY: a handle from `create::<T>`, destroyed once.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        drop(unsafe { Box::from_raw(handle.cast::<T>()) })
    }));
}

const fn base<T: Component>(kind: Kind) -> ComponentVTable {
    ComponentVTable {
        kind,
        name: Str::from_static(T::NAME),
        description: Str::from_static(T::DESCRIPTION),
        options: T::OPTIONS.as_ptr(),
        options_len: T::OPTIONS.len(),
        validate: validate::<T>,
        create: create::<T>,
        process: no_batches,
        poll: no_polls,
        tick: nothing,
        tick_interval_millis: 0,
        finish: nothing,
        destroy: destroy::<T>,
    }
}

/// The vtable of transform `T` (used by [`export_plugin!`](crate::export_plugin)).
pub const fn transform<T: Transform>() -> ComponentVTable {
    ComponentVTable {
        process: process_transform::<T>,
        tick: tick_transform::<T>,
        tick_interval_millis: T::TICK_INTERVAL_MILLIS,
        finish: finish_transform::<T>,
        ..base::<T>(Kind::TRANSFORM)
    }
}

/// The vtable of sink `T` (used by [`export_plugin!`](crate::export_plugin)).
pub const fn sink<T: Sink>() -> ComponentVTable {
    ComponentVTable {
        process: write_sink::<T>,
        finish: finish_sink::<T>,
        ..base::<T>(Kind::SINK)
    }
}

/// The vtable of source `T` (used by [`export_plugin!`](crate::export_plugin)).
pub const fn source<T: Source>() -> ComponentVTable {
    ComponentVTable {
        poll: poll_source::<T>,
        ..base::<T>(Kind::SOURCE)
    }
}

/// How far a stateful transform's output goes (see [`Transform::emitted_through`]); a panic says
/// "none", which keeps every ticket.
unsafe extern "C-unwind" fn emitted_through<T: Transform>(handle: Handle) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a handle from `create::<T>`, called by one thread at a time.
        let component: &T = unsafe { instance::<T>(handle) };
        component.emitted_through()
    }))
    .unwrap_or(i64::MIN)
}

/// The [`ComponentExtension`]s of each kind (used by [`export_plugin!`](crate::export_plugin)).
pub mod extension {
    use super::*;

    const NONE: ComponentExtension = ComponentExtension {
        struct_size: core::mem::size_of::<ComponentExtension>(),
        emitted_through: None,
    };

    /// Transform `T`'s: how far its output goes, if it keeps state.
    pub const fn transform<T: Transform>() -> ComponentExtension {
        ComponentExtension {
            emitted_through: if T::KEEPS_STATE {
                Some(emitted_through::<T>)
            } else {
                None
            },
            ..NONE
        }
    }

    /// Sink `T`'s: nothing beyond its vtable.
    pub const fn sink<T: Sink>() -> ComponentExtension {
        NONE
    }

    /// Source `T`'s: nothing beyond its vtable.
    pub const fn source<T: Source>() -> ComponentExtension {
        NONE
    }
}
