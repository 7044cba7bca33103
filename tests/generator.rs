//! Generators: values in and out, nesting, panics both ways, drop while
//! suspended, iteration, many generators.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use coio::{Generator, GeneratorState, StackPolicy, Yielder};

#[test]
fn values_in_and_out() {
    let mut g = Generator::new(|y, first: u64| {
        let mut sum = first;
        for i in 0..10 {
            sum += y.yield_(sum * 2 + i);
        }
        sum
    });
    let mut expected_sum = 1u64;
    assert_eq!(g.resume(1), GeneratorState::Yielded(2));
    for i in 1..10 {
        expected_sum += 5;
        assert_eq!(g.resume(5), GeneratorState::Yielded(expected_sum * 2 + i));
    }
    assert_eq!(g.resume(7), GeneratorState::Complete(expected_sum + 7));
    assert!(g.is_finished());
}

#[test]
fn large_values_cross_the_switch() {
    let big_in = [7u8; 8192];
    // Debug builds copy large values several times per call: give room.
    let mut g = Generator::builder()
        .stack_size(1 << 20)
        .build(|y, input: [u8; 8192]| {
            let mut acc = input;
            for round in 0..3u8 {
                let mut out = [0u64; 1024];
                for (i, w) in out.iter_mut().enumerate() {
                    *w = i as u64 * 3 + round as u64 + acc[i] as u64;
                }
                acc = y.yield_(out);
            }
            acc.iter().map(|&b| b as u64).sum::<u64>()
        })
        .unwrap();
    for round in 0..3u64 {
        match g.resume(big_in) {
            GeneratorState::Yielded(out) => {
                for (i, w) in out.iter().enumerate() {
                    assert_eq!(*w, i as u64 * 3 + round + 7);
                }
            }
            GeneratorState::Complete(_) => panic!("finished early"),
        }
    }
    assert_eq!(g.resume([1u8; 8192]), GeneratorState::Complete(8192));
}

#[test]
fn strings_and_boxes_are_moved_not_copied() {
    let mut g = Generator::new(|y, s: String| {
        let t = y.yield_(format!("{s}!"));
        vec![s, t]
    });
    assert_eq!(
        g.resume("a".to_string()),
        GeneratorState::Yielded("a!".to_string())
    );
    assert_eq!(
        g.resume("b".to_string()),
        GeneratorState::Complete(vec!["a".to_string(), "b".to_string()])
    );
}

#[test]
fn iterator_over_unit_input() {
    let g = Generator::new(|y, ()| {
        for i in 0..5 {
            y.yield_(i);
        }
    });
    assert_eq!(g.collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);

    // Owning its data (generators are 'static, like threads).
    let data = vec![10, 20, 30];
    let g = Generator::new(move |y, ()| {
        for x in &data {
            y.yield_(*x + 1);
        }
    });
    assert_eq!(g.sum::<i32>(), 63);
}

#[test]
fn yield_from_deep_recursion() {
    fn walk(depth: u32, y: &Yielder<(), u32>) {
        if depth == 0 {
            return;
        }
        y.yield_(depth);
        walk(depth - 1, y);
        y.yield_(depth + 1000);
    }
    let g = Generator::new(|y, ()| walk(100, y));
    let v: Vec<u32> = g.collect();
    assert_eq!(v.len(), 200);
    assert_eq!(v[0], 100);
    assert_eq!(v[199], 1100);
}

#[test]
fn nested_generators() {
    let mut outer = Generator::new(|y, ()| {
        let inner = Generator::new(|yi, ()| {
            for i in 0..3 {
                yi.yield_(i);
            }
            "inner done"
        });
        let mut total = 0;
        for v in inner {
            total += v;
            y.yield_(v * 10);
        }
        let mut inner2 = Generator::new(|yi, x: i32| yi.yield_(x + 1) * 2);
        assert_eq!(inner2.resume(1), GeneratorState::Yielded(2));
        assert_eq!(inner2.resume(5), GeneratorState::Complete(10));
        total
    });
    assert_eq!(outer.resume(()), GeneratorState::Yielded(0));
    assert_eq!(outer.resume(()), GeneratorState::Yielded(10));
    assert_eq!(outer.resume(()), GeneratorState::Yielded(20));
    assert_eq!(outer.resume(()), GeneratorState::Complete(3));
}

#[test]
fn panic_inside_is_reraised_in_resumer() {
    let mut g = Generator::new(|y: &Yielder<(), i32>, ()| {
        y.yield_(1);
        panic!("boom inside");
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(1));
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom inside"));
    assert!(g.is_finished());
    // Resuming a finished generator is a clear panic.
    let err = catch_unwind(AssertUnwindSafe(|| g.resume(()))).unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .copied()
        .or(err.downcast_ref::<String>().map(|s| s.as_str()));
    assert!(msg.unwrap().contains("already finished"));
    // A finished generator iterates as empty.
    assert_eq!(g.next(), None);
}

#[test]
fn panic_in_resumer_while_generator_suspended_unwinds_generator() {
    struct Flag(Rc<Cell<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let mut g = Generator::new(move |y, ()| {
            let _f = Flag(d);
            y.yield_(());
            unreachable!();
        });
        g.resume(());
        panic!("boom outside");
    }));
    assert!(r.is_err());
    assert_eq!(
        drops.get(),
        1,
        "the generator's stack was unwound while the resumer unwound"
    );
}

#[test]
fn drop_while_suspended_runs_destructors() {
    struct Count(Rc<Cell<u32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    fn deep(n: u32, drops: &Rc<Cell<u32>>, y: &Yielder<(), u32>) {
        let _c = Count(drops.clone());
        if n == 0 {
            loop {
                y.yield_(n);
            }
        }
        deep(n - 1, drops, y);
    }
    let d = drops.clone();
    let captured = Count(drops.clone());
    let mut g = Generator::new(move |y, ()| {
        let _moved_in = captured;
        deep(9, &d, y);
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(0));
    assert_eq!(drops.get(), 0);
    drop(g);
    // 10 frames of `deep` + the captured value.
    assert_eq!(drops.get(), 11);
    assert_eq!(Rc::strong_count(&drops), 1, "nothing leaked");
}

#[test]
fn drop_never_started_drops_closure() {
    let rc = Rc::new(());
    let r2 = rc.clone();
    let g = Generator::new(move |_y: &Yielder<(), ()>, ()| drop(r2));
    assert_eq!(Rc::strong_count(&rc), 2);
    drop(g);
    assert_eq!(Rc::strong_count(&rc), 1);
}

#[test]
fn drop_retries_when_body_catches_the_unwind() {
    let caught = Rc::new(Cell::new(0));
    let c = caught.clone();
    let mut g = Generator::new(move |y: &Yielder<(), u32>, ()| {
        for _ in 0..3 {
            let r = catch_unwind(AssertUnwindSafe(|| y.yield_(1)));
            if let Err(payload) = r {
                assert!(payload.is::<coio::ForcedUnwind>());
                c.set(c.get() + 1);
            }
        }
    });
    g.resume(());
    drop(g);
    assert_eq!(
        caught.get(),
        3,
        "the unwind order was repeated until the body finished"
    );
}

#[test]
fn builder_stack_size_and_policies() {
    for policy in [StackPolicy::Auto, StackPolicy::Guarded, StackPolicy::Canary] {
        let mut g = Generator::builder()
            .stack_size(1 << 20)
            .stack_policy(policy)
            .build(|y, ()| {
                // Use most of a megabyte of stack.
                let mut big = [0u8; 900 * 1024];
                for (i, b) in big.iter_mut().enumerate() {
                    *b = i as u8;
                }
                y.yield_(std::hint::black_box(&big)[1234]);
                7u8
            })
            .unwrap();
        assert!(g.stack_size() >= 1 << 20);
        assert_eq!(g.resume(()), GeneratorState::Yielded((1234 % 256) as u8));
        assert_eq!(g.resume(()), GeneratorState::Complete(7));
    }
    let g = Generator::builder()
        .stack_size(1)
        .build(|_: &Yielder<(), ()>, ()| ())
        .unwrap();
    assert_eq!(g.stack_size(), coio::MIN_STACK_SIZE);
}

#[test]
fn many_generators_live_at_once() {
    let mut gens: Vec<Generator<(), usize, usize>> = (0..10_000)
        .map(|i| {
            Generator::new(move |y, ()| {
                y.yield_(i);
                i * 2
            })
        })
        .collect();
    for (i, g) in gens.iter_mut().enumerate() {
        assert_eq!(g.resume(()), GeneratorState::Yielded(i));
    }
    for (i, g) in gens.iter_mut().enumerate().rev() {
        assert_eq!(g.resume(()), GeneratorState::Complete(i * 2));
    }
}

#[test]
fn generators_on_many_threads() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut total = 0u64;
                for round in 0..2_000u64 {
                    let g = Generator::new(move |y, ()| {
                        for i in 0..10 {
                            y.yield_(i + round + t);
                        }
                    });
                    total += g.sum::<u64>();
                }
                total
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let expected: u64 = (0..2_000u64)
            .map(|r| (0..10).map(|i| i + r + t as u64).sum::<u64>())
            .sum();
        assert_eq!(h.join().unwrap(), expected);
    }
}

/// A generator suspended inside `LocalKey::with`, owned by another
/// thread-local, must not be resumed (not even to unwind) once the thread
/// has begun to exit: the first thread-local may already be destroyed.
#[test]
fn generator_in_a_thread_local_is_not_unwound_at_thread_exit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static A_DESTROYED: AtomicBool = AtomicBool::new(false);
    static USED_AFTER_DESTROY: AtomicBool = AtomicBool::new(false);
    struct TrackedA(u8);
    impl Drop for TrackedA {
        fn drop(&mut self) {
            A_DESTROYED.store(true, Ordering::SeqCst);
        }
    }
    struct Use<'a>(&'a TrackedA);
    impl Drop for Use<'_> {
        fn drop(&mut self) {
            if A_DESTROYED.load(Ordering::SeqCst) {
                USED_AFTER_DESTROY.store(true, Ordering::SeqCst);
            }
            std::hint::black_box(self.0.0);
        }
    }
    thread_local! {
        static GEN: std::cell::RefCell<Option<Generator<(), (), ()>>> = const { std::cell::RefCell::new(None) };
        static A: TrackedA = const { TrackedA(7) };
    }
    std::thread::spawn(|| {
        GEN.with(|slot| {
            let mut g = Generator::new(|y: &Yielder<(), ()>, ()| {
                A.with(|a| {
                    let _use = Use(a);
                    y.yield_(());
                })
            });
            g.resume(());
            *slot.borrow_mut() = Some(g);
        });
    })
    .join()
    .unwrap();
    assert!(A_DESTROYED.load(Ordering::SeqCst));
    assert!(
        !USED_AFTER_DESTROY.load(Ordering::SeqCst),
        "a destroyed thread-local was used"
    );
}

/// Primitive values travel in the switch's register, everything else by
/// address; both must arrive intact, whatever their size and padding.
#[test]
fn every_kind_of_value_crosses_intact() {
    fn echo<T: Clone + PartialEq + std::fmt::Debug + 'static>(values: Vec<T>) {
        let mut g = Generator::new(|y: &Yielder<T, T>, mut x: T| {
            loop {
                x = y.yield_(x);
            }
        });
        for v in values {
            assert_eq!(g.resume(v.clone()), GeneratorState::Yielded(v));
        }
    }
    echo(vec![0u8, 1, 255]);
    echo(vec![u16::MAX, 7]);
    echo(vec![u32::MAX, 0, 12345]);
    echo(vec![u64::MAX, 0, 1 << 63]);
    echo(vec![usize::MAX, 42]);
    echo(vec![i8::MIN, -1, i8::MAX]);
    echo(vec![i16::MIN, -1]);
    echo(vec![i32::MIN, -1, 0]);
    echo(vec![i64::MIN, -1]);
    echo(vec![isize::MIN, isize::MAX]);
    echo(vec![true, false, true]);
    echo(vec!['a', '\u{10FFFF}', '\0']);
    echo(vec![1.5f32, -0.0, f32::MAX]);
    echo(vec![f64::MIN_POSITIVE, -2.25]);
    echo(vec![(), ()]);
    // Not primitives: by address (padding, niches, heap data, large).
    echo(vec![(1u8, 2u32), (255, u32::MAX)]);
    echo(vec![Some(3u32), None]);
    echo(vec![Some(Box::new(5u8)), None]);
    echo(vec![String::from("coio"), String::new()]);
    echo(vec![[7u64; 16], [0; 16]]);
}

/// At thread exit a generator that never started has no frames, so it is
/// still finished properly: its closure (and what it owns) is dropped.
#[test]
fn fresh_generator_in_a_thread_local_drops_its_closure_at_thread_exit() {
    thread_local! {
        static FRESH: std::cell::RefCell<Option<Generator<(), (), ()>>> = const { std::cell::RefCell::new(None) };
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // A generator run first, so that coio's thread-local is older than FRESH.
        Generator::new(|_: &Yielder<(), ()>, ()| {}).resume(());
        let g = Generator::new(move |_: &Yielder<(), ()>, ()| drop(tx));
        FRESH.with(|slot| *slot.borrow_mut() = Some(g));
    })
    .join()
    .unwrap();
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected),
        "the closure (holding the sender) was dropped"
    );
}

#[test]
fn named_generators() {
    let mut g = Generator::builder()
        .name("parser")
        .build(|y: &Yielder<(), u8>, ()| y.yield_(1))
        .unwrap();
    assert_eq!(g.name(), Some("parser"));
    assert!(format!("{g:?}").contains("parser"));
    g.resume(());
    drop(g);
    // The stack goes back to the pool without the name.
    let unnamed = Generator::new(|y: &Yielder<(), u8>, ()| y.yield_(1));
    assert_eq!(unnamed.name(), None);
    // Named generators dropped in every state free their names (valgrind
    // and the allocator would notice otherwise).
    for state in 0..3 {
        let mut g = Generator::builder()
            .name(format!("g{state}"))
            .build(|y: &Yielder<(), u8>, ()| y.yield_(1))
            .unwrap();
        for _ in 0..state {
            g.resume(());
        }
        drop(g);
    }
}

/// Without debug assertions nothing checks for a yield while the generator
/// unwinds (see `Yielder::yield_`, "Aborts"): the resumer gets the value,
/// sees `thread::panicking()` until the generator is resumed again, and
/// then gets the generator's panic, with the thread's panic state whole
/// again afterwards.
#[test]
#[cfg(not(debug_assertions))]
fn yield_while_unwinding_is_passed_through_in_release_builds() {
    struct YieldOnDrop<'a>(&'a Yielder<(), u32>);
    impl Drop for YieldOnDrop<'_> {
        fn drop(&mut self) {
            self.0.yield_(7);
        }
    }
    let mut g = Generator::new(|y: &Yielder<(), u32>, ()| -> u32 {
        let _guard = YieldOnDrop(y);
        std::panic::panic_any("unwinding through a destructor that yields")
    });
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    assert!(matches!(g.resume(()), GeneratorState::Yielded(7)));
    assert!(
        std::thread::panicking(),
        "the generator's unwind is in flight"
    );
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.resume(())))
        .expect_err("the generator's panic reaches the resumer");
    std::panic::set_hook(hook);
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"unwinding through a destructor that yields")
    );
    assert!(!std::thread::panicking());
    assert!(g.is_finished());
}

/// A named generator whose drop unwinds (its body turns the forced unwind
/// into a panic of its own, or a value its closure captured panics when
/// dropped) still frees its name: the next unnamed generator on the pooled
/// stack reported it (and freed it, not its own).
#[test]
fn a_drop_that_panics_leaves_no_name_on_the_stack() {
    use std::panic::resume_unwind;
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("a captured value panics when dropped");
        }
    }
    let mut suspended = Generator::builder()
        .name("suspended")
        .build(|y, ()| {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| y.yield_(1))) {
                if p.is::<coio::ForcedUnwind>() {
                    panic!("the forced unwind turned into a panic");
                }
                resume_unwind(p);
            }
        })
        .unwrap();
    assert_eq!(suspended.next(), Some(1));
    assert!(catch_unwind(AssertUnwindSafe(move || drop(suspended))).is_err());
    let other = Generator::new(|y, ()| y.yield_(2));
    assert_eq!(other.name(), None, "after a suspended one");
    drop(other);

    let p = PanicOnDrop;
    let fresh = Generator::builder()
        .name("fresh")
        .build(move |y, ()| {
            let _p = &p;
            y.yield_(1)
        })
        .unwrap();
    assert!(catch_unwind(AssertUnwindSafe(move || drop(fresh))).is_err());
    let other = Generator::new(|y, ()| y.yield_(2));
    assert_eq!(other.name(), None, "after a fresh one");
}
