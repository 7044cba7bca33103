//! Locks and other synchronization primitives for coroutines and threads
//! alike, built on the parking core (`park`). Being written.
