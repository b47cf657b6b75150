//! The guard as the decoder meets it: a lying capacity inside a scope costs no memory and trips.

use super::*;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

#[test]
fn a_lying_capacity_inside_a_scope_is_address_space_only_and_trips() {
    let (addr, tripped) = decode_scope(1 << 20, || {
        // 2^31 elements of 72 bytes: what a 20-byte Metadata request asks for.
        let mut v: Vec<[u64; 9]> = Vec::with_capacity(i32::MAX as usize);
        assert!(v.capacity() >= i32::MAX as usize);
        assert!(tripped());
        assert!(is_guarded(v.as_mut_ptr().cast()));
        v.as_mut_ptr() as usize
    });
    assert!(tripped);
    assert!(!super::tripped(), "the flag is the scope's, not the thread's forever");
    assert!(!is_guarded(addr as *mut u8), "the mapping was released with the vector");
}

#[test]
fn allocations_within_the_budget_are_ordinary_memory() {
    let (sum, tripped) = decode_scope(1 << 20, || {
        let v: Vec<u64> = (0..100_000).collect();
        v.iter().sum::<u64>()
    });
    assert_eq!(sum, 100_000 * 99_999 / 2);
    assert!(!tripped);
}

#[test]
fn outside_a_scope_nothing_is_guarded() {
    let v: Vec<u8> = Vec::with_capacity(64 << 20);
    assert!(!is_guarded(v.as_ptr().cast_mut()));
    assert!(!tripped());
}

#[test]
fn growing_a_guarded_vector_moves_it_to_real_memory_when_within_budget() {
    let ((), tripped) = decode_scope(1 << 20, || {
        let mut v: Vec<u8> = Vec::with_capacity(256 << 20);
        assert!(is_guarded(v.as_mut_ptr()));
        v.extend_from_slice(&[7; 1000]);
        v.shrink_to(1000);
        assert!(!is_guarded(v.as_mut_ptr()));
        assert_eq!(v.iter().map(|&b| u64::from(b)).sum::<u64>(), 7000, "the contents moved with it");
    });
    assert!(tripped);
}

#[test]
fn other_code_in_a_scope_may_use_a_large_allocation() {
    // A backtrace symbolized for an error inside a decode allocates and writes large tables.
    let (sum, tripped) = decode_scope(1 << 20, || {
        let mut v: Vec<u64> = Vec::with_capacity(1 << 20);
        v.extend(0..(1u64 << 20));
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.iter().take(3).sum::<u64>()
    });
    assert_eq!(sum, 3 * ((1 << 20) - 1) - 3);
    assert!(tripped, "it trips the scope all the same");
}

#[test]
fn a_moderate_lie_comes_from_the_system_untouched_and_still_trips() {
    let (guarded, tripped) = decode_scope(1 << 20, || {
        let mut v: Vec<u8> = Vec::with_capacity(32 << 20);
        is_guarded(v.as_mut_ptr())
    });
    assert!(!guarded, "32 MiB is the system allocator's");
    assert!(tripped, "but over the budget all the same");
}
