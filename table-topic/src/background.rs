//! The low-priority executor of Table Topic upkeep (compaction, expired-file deletion): one
//! thread at a lower CPU priority running its own tokio runtime, so that a large merge takes the
//! CPU the commit loops and the broker's requests leave, not the CPU they need.

use std::future::Future;
use std::sync::OnceLock;

/// Nice value of the upkeep thread (and the blocking threads it starts): under contention it gets
/// about a tenth of what a normal thread gets, and all of an idle core.
const UPKEEP_NICE: i32 = 10;

/// Runs `task` on the upkeep thread; the handle can be awaited (or aborted) from any runtime.
/// Falls back to the caller's runtime if the thread cannot be started.
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle() {
        Some(h) => h.spawn(task),
        None => tokio::spawn(task),
    }
}

fn handle() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    HANDLE.get_or_init(start).as_ref()
}

fn start() -> Option<tokio::runtime::Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let started = std::thread::Builder::new().name("floe-table-upkeep".into()).spawn(move || {
        if let Err(e) = floe_io_sys::set_thread_nice(UPKEEP_NICE) {
            tracing::warn!(error = %e, "the table upkeep thread runs at normal priority");
        }
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().thread_name("floe-table-upkeep-io").build() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "no runtime for table upkeep; it runs on the node's");
                let _ = tx.send(None);
                return;
            }
        };
        let _ = tx.send(Some(runtime.handle().clone()));
        runtime.block_on(std::future::pending::<()>());
    });
    match started {
        Ok(_) => rx.recv().ok().flatten(),
        Err(e) => {
            tracing::warn!(error = %e, "no thread for table upkeep; it runs on the node's runtime");
            None
        }
    }
}
