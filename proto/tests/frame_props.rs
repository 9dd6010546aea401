//! Property tests of the framing: every payload round-trips in both the
//! sync and async drivers, and arbitrary bytes read as frames give a value
//! or an error — never a panic, a hang, or an allocation beyond the limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mp_proto::frame::{self, FrameError, EAGER_ALLOC};
use proptest::prelude::*;

/// Records the largest single allocation of each thread, to check that a
/// lying header cannot make a reader allocate what it announces.
struct Watch;

thread_local! {
    // Const-initialized and without destructor: safe to touch from inside
    // the allocator.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

/// The largest allocation this thread made while running `f`.
fn largest_during(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(|l| l.get())
}

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a thread-local max, which allocates nothing.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

fn frames(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        frame::write_frame(&mut wire, p).unwrap();
    }
    wire
}

proptest! {
    #[test]
    fn payloads_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40_000), 0..5)) {
        let wire = frames(&payloads);
        let mut reader = &wire[..];
        for p in &payloads {
            prop_assert_eq!(&frame::read_frame(&mut reader, u64::MAX).unwrap().unwrap(), p);
        }
        prop_assert!(frame::read_frame(&mut reader, u64::MAX).unwrap().is_none());

        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            for p in &payloads {
                frame::write_frame_async(&mut out, p).await.unwrap();
            }
            assert_eq!(out, wire);
            let mut reader = &wire[..];
            for p in &payloads {
                assert_eq!(&frame::read_frame_async(&mut reader, u64::MAX).await.unwrap().unwrap(), p);
            }
            assert!(frame::read_frame_async(&mut reader, u64::MAX).await.unwrap().is_none());
        });
    }

    #[test]
    fn frames_split_anywhere_keep_their_bytes(payload in prop::collection::vec(any::<u8>(), 0..20_000), cut in any::<prop::sample::Index>()) {
        // A frame read back from a truncated stream is an error, not a
        // shorter message.
        let wire = frames(std::slice::from_ref(&payload));
        let cut = cut.index(wire.len());
        match frame::read_frame(&mut &wire[..cut], u64::MAX) {
            Ok(None) => prop_assert_eq!(cut, 0),
            Err(FrameError::Truncated { .. }) => prop_assert!(cut > 0),
            other => prop_assert!(false, "unexpected {:?}", other.map(|o| o.map(|v| v.len()))),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overallocate(bytes in prop::collection::vec(any::<u8>(), 0..64), max in prop_oneof![Just(u64::MAX), 0..1000u64]) {
        let mut lengths = Vec::with_capacity(bytes.len());
        let largest = largest_during(|| {
            let mut reader = &bytes[..];
            // Each step consumes input, so this ends.
            while let Ok(Some(p)) = frame::read_frame(&mut reader, max) {
                lengths.push(p.len() as u64);
            }
        });
        prop_assert!(lengths.iter().all(|&n| n <= max));
        // Nothing but payloads is allocated: at most `max`, and at most
        // EAGER_ALLOC ahead of the data under an unlimited maximum.
        prop_assert!(largest as u64 <= max.min(EAGER_ALLOC as u64), "allocated {} bytes", largest);
        let mut buf = [0u8; 16];
        let _ = frame::read_frame_into(&mut &bytes[..], &mut buf, max);
    }
}

#[test]
fn a_lying_header_costs_what_arrived_not_what_it_claims() {
    // 1 TiB announced in the long form, 10 bytes sent.
    let mut wire = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0];
    wire.extend_from_slice(&[0; 10]);
    let mut result = None;
    let largest = largest_during(|| result = Some(frame::read_frame(&mut &wire[..], u64::MAX)));
    let err = result.unwrap().unwrap_err();
    assert!(
        matches!(err, FrameError::Truncated { received: 10, .. }),
        "{err}"
    );
    assert!(largest <= EAGER_ALLOC, "{largest}");
    // Under the default limit it is refused outright.
    assert!(matches!(
        frame::read_frame(&mut &wire[..], frame::DEFAULT_MAX_FRAME),
        Err(FrameError::TooLarge { .. })
    ));
}
