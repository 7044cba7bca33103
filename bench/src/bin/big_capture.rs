//! How large a closure's captures can be and still run on the default
//! 128 KiB coroutine stack: `big_capture <KiB>` spawns (with
//! `Runtime::spawn`) one coroutine whose closure captures an array of that
//! many KiB and sums it, and prints `<KiB> KiB ok`; a closure too big for
//! the stack ends the process with coio's overflow report. BENCHMARKS.md
//! has the loop over sizes.

fn main() {
    let kib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: big_capture <KiB: 16, 32, ..., 120>");
    let rt = coio::Runtime::builder().workers(1).build().unwrap();
    macro_rules! sizes {
        ($($n:literal)*) => {
            match kib {
                $($n => {
                    let big = [1u8; $n * 1024];
                    let h = rt.spawn(move || big.iter().map(|&b| b as usize).sum::<usize>());
                    assert_eq!(h.join().unwrap(), $n * 1024);
                })*
                _ => panic!("sizes: 16, 32, 48, 64, 80, 96, 112, 120"),
            }
        };
    }
    sizes!(16 32 48 64 80 96 112 120);
    println!("{kib} KiB ok");
}
