//! Naming the coroutine a panic happens in.
//!
//! std's panic message names the thread (`thread 'coio-worker-0'
//! panicked at ...`), which in coio is only the worker the coroutine ran
//! on. The first runtime built puts a hook in front of whatever panic hook
//! is installed: inside a coroutine it first writes
//! `coio: panic in coroutine <id> "<name>" (created at <file:line:col>):`,
//! then calls the previous hook (std's message, backtrace and all, or the
//! user's own hook). A hook the program sets later replaces it, as any
//! hook does. Cancellation unwinds without a panic hook, so it writes
//! nothing.

use std::sync::Once;

use super::worker;

/// Installs the hook, once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The stall monitor's mark (not a stall of the coroutine's
            // code), cleared however the hook ends.
            let _mark = worker::coroutine_local().map(|l| InHook::new(l.progress()));
            note();
            previous(info);
        }));
    });
}

/// Marks the running coroutine's worker as in the panic hook while it
/// lives (`Progress::set_in_panic_hook`).
struct InHook<'a>(&'a super::monitor::Progress);

impl<'a> InHook<'a> {
    fn new(p: &'a super::monitor::Progress) -> Self {
        p.set_in_panic_hook(true);
        InHook(p)
    }
}

impl Drop for InHook<'_> {
    fn drop(&mut self) {
        self.0.set_in_panic_hook(false);
    }
}

/// The line naming the running coroutine, if the panic is in one. The
/// hook runs on the panicking coroutine's stack, before any unwinding:
/// nothing here switches, so the thread-local read stays valid.
#[inline(never)]
fn note() {
    let Some(l) = worker::coroutine_local() else {
        return;
    };
    let line = l.with_current(|t| {
        let h = t.header();
        let name = h.name().map(|n| format!(" \"{n}\"")).unwrap_or_default();
        format!(
            "coio: panic in coroutine {}{name} (created at {}):",
            h.id,
            h.site()
        )
    });
    note!("{line}");
}
