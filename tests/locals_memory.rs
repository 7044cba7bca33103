//! Coroutine-locals free their storage when their coroutine ends: an
//! allocator that counts live bytes, in a binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, counting bytes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

coio::coroutine_local! {
    static X: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// 20,000 coroutines that each use a coroutine-local and a `block_on` (a
/// waker kept in their locals) leave nothing behind. (A change that
/// dropped the values one by one forgot to free their vector: 200 bytes
/// per coroutine.)
#[test]
fn coroutine_locals_are_freed_with_their_coroutine() {
    let rt = coio::Runtime::builder().workers(1).build().unwrap();
    let grew = rt.block_on(|| {
        let round = || {
            for _ in 0..10_000 {
                coio::spawn(|| {
                    X.with(|x| x.set(1));
                    coio::future::block_on(async { 1 })
                })
                .join()
                .unwrap();
            }
        };
        // A first round fills the caches (stacks, finished tasks).
        round();
        let before = LIVE.load(Relaxed);
        round();
        round();
        LIVE.load(Relaxed) - before
    });
    assert!(grew < 64 << 10, "{grew} bytes more after 20,000 coroutines");
}
