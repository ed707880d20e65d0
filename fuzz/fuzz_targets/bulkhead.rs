//! The bulkhead under an arbitrary maximum, arbitrary acquires, releases (drops) and
//! changes of the maximum. Checks: no panic; a permit is granted only while fewer than
//! the maximum are out, and refused only when the maximum is reached; the count in use
//! is exactly the permits held; a refusal reports the true count and maximum.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stanchion::bulkhead::Bulkhead;

#[derive(Arbitrary, Debug)]
enum Op {
    Acquire,
    AcquireOwned,
    Release(u8),
    SetMax(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    max: u32,
    ops: Vec<Op>,
}

const MAX_OPS: usize = 1024;

fuzz_target!(|input: Input| {
    // Small maxima most of the time, so that the maximum is reached.
    let small = |m: u32| if m & 0x8000_0000 == 0 { m % 16 } else { m };
    let Ok(bulkhead) = Bulkhead::new(small(input.max)) else {
        assert_eq!(small(input.max), 0);
        return;
    };
    let mut held = Vec::new();
    let mut owned = Vec::new();
    for op in &input.ops[..input.ops.len().min(MAX_OPS)] {
        let (in_use, max) = (bulkhead.in_use(), bulkhead.max_concurrent());
        match *op {
            Op::Acquire | Op::AcquireOwned => {
                let result = if matches!(op, Op::Acquire) {
                    bulkhead.try_acquire().map(|p| held.push(p))
                } else {
                    Bulkhead::try_acquire_owned(&bulkhead).map(|p| owned.push(p))
                };
                match result {
                    Ok(()) => assert!(in_use < max, "granted with {in_use} of {max} in use"),
                    Err(full) => {
                        assert!(in_use >= max, "refused with {in_use} of {max} in use");
                        assert_eq!((full.in_use(), full.max_concurrent()), (in_use, max));
                    }
                }
            }
            Op::Release(i) => {
                let i = usize::from(i);
                if i % 2 == 0 && !held.is_empty() {
                    drop(held.swap_remove(i / 2 % held.len()));
                } else if !owned.is_empty() {
                    drop(owned.swap_remove(i / 2 % owned.len()));
                }
            }
            Op::SetMax(m) => {
                let m = small(m);
                assert_eq!(bulkhead.set_max_concurrent(m).is_ok(), m > 0);
            }
        }
        let out = (held.len() + owned.len()) as u32;
        assert_eq!(
            bulkhead.in_use(),
            out,
            "in use disagrees with the permits held"
        );
        assert_eq!(
            bulkhead.available(),
            bulkhead.max_concurrent().saturating_sub(out)
        );
    }
});
