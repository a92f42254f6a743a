//! What every stage of a run shares about the run as a whole: the stop request
//! ([`Shutdown`]) and whether any stage has failed ([`RunHealth`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Whether a run has failed; one shared flag per run. Set by the engine *before* a failed
/// stage's queued batches are dropped, so delivery tickets settling afterwards can tell that
/// they were not delivered.
#[derive(Clone, Debug, Default)]
pub struct RunHealth(Arc<AtomicBool>);

impl RunHealth {
    /// Marks the run as failed.
    pub fn fail(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once any stage failed.
    pub fn has_failed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The receiving side of a stop request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side of a stop request.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A connected trigger and signal.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks every holder of the signal to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// A new signal connected to this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// True once a stop was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until a stop is requested (or the trigger is gone, which means the same).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_signal_fires_for_every_subscriber() {
        let (trigger, mut a) = shutdown_pair();
        let b = trigger.subscribe();
        assert!(!a.is_requested());
        trigger.trigger();
        a.requested().await;
        assert!(b.is_requested());
    }
}
