use std::hint::black_box;
fn main() {
    let n = 20_000_000u64;
    let mut stack = corosensei::stack::DefaultStack::new(coio::DEFAULT_STACK_SIZE).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        for i in 0..n {
            let mut g = coio::Generator::new(|_y: &coio::Yielder<u64, u64>, x: u64| x + 1);
            black_box(g.resume(black_box(i)));
        }
        let a = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for i in 0..n {
            let co = corosensei::ScopedCoroutine::with_stack(
                &mut stack,
                |_y: &corosensei::Yielder<u64, u64>, x: u64| x + 1,
            );
            co.scope(|mut co| black_box(co.resume(black_box(i))));
        }
        let b = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("create coio {a:.2} ns, corosensei {b:.2} ns");
    }
}
