//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` for the static webhook on x86_64 musl.
//!
//! musl's x86_64 `memcpy` is `rep movsq` behind a byte loop: cheap per byte, but each call
//! pays the string instruction's start-up, and an admission makes ~1,500 small copies
//! (serde writing strings, `Vec` growth, hyper's buffers): 27 % of the webhook's cycles were
//! in musl's `memcpy`, and the same source linked against glibc used ~25 % less CPU per
//! admission (BENCHMARKS.md, findings). Its `memcmp` is a byte loop.
//!
//! These are the usual shape of a fast libc's: sizes up to 64 bytes are copied with a few
//! overlapping unaligned loads and stores, larger ones in 32-byte steps, and large ones
//! (from 4 KiB) with `rep movsb`/`rep stosb`, which is fast on CPUs with ERMSB (every x86_64
//! server CPU of the last decade). The crate is `no_builtins`, so LLVM never turns these
//! loops back into calls to `memcpy`, and nothing here builds an array by repetition (an
//! unoptimized build would call `memset` for it, that is, itself); the crate is optimized in
//! every profile (root `Cargo.toml`) so that fixed-size loads and stores are instructions,
//! never calls. `cargo test -p secrets-init-fast-mem --target x86_64-unknown-linux-musl`
//! runs the tests with these functions in place of musl's (scripts/test-static).
//!
//! The symbols are exported (`#[no_mangle]`) only when building for x86_64 musl: there they
//! take the place of musl's when the binary is linked. Elsewhere (glibc, aarch64, whose musl
//! already has an optimized `memcpy`) the crate only provides the functions under their own
//! names, for tests.

#![no_std]
#![no_builtins]

use core::ptr::{read_unaligned as load, write_unaligned as store};

/// From this size on, `rep movsb` / `rep stosb` (start-up cost amortised; ERMSB then moves
/// cache lines at a time).
const REP_FROM: usize = 4096;

/// Copies `n` bytes from `s` to `d` (the ranges do not overlap).
///
/// # Safety
/// As C's `memcpy`: `s` valid for `n` reads, `d` for `n` writes, no overlap.
#[inline]
pub unsafe fn copy(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: the caller's contract; the small cases touch only [0, n) of both ranges.
    unsafe {
        if n <= 64 {
            copy_small(d, s, n);
        } else {
            copy_forward(d, s, n);
        }
    }
}

/// `n` > 64, and `d` does not start inside `(s, s + n)`: with `rep movsb` for large sizes,
/// else 32 bytes at a time, then the last 32. The last 32 source bytes are read before the
/// loop, so a destination that starts before an overlapping source (memmove's forward case)
/// never gets bytes the loop already overwrote.
#[inline(always)]
unsafe fn copy_forward(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: every access lies within [0, n) of its range (n > 64), which the caller
    // guarantees is valid; forward order is correct for d <= s or no overlap.
    unsafe {
        if n >= REP_FROM && cfg!(target_arch = "x86_64") {
            rep_movsb(d, s, n);
            return;
        }
        let last = load(s.add(n - 32).cast::<[u128; 2]>());
        let mut i = 0;
        while i + 32 <= n {
            store(
                d.add(i).cast::<[u128; 2]>(),
                load(s.add(i).cast::<[u128; 2]>()),
            );
            i += 32;
        }
        store(d.add(n - 32).cast::<[u128; 2]>(), last);
    }
}

/// `n` ≤ 64: every load happens before any store, so this is correct even for overlapping
/// ranges (memmove uses it too).
#[inline(always)]
unsafe fn copy_small(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: each access lies within [0, n) of its range, which the caller guarantees.
    unsafe {
        if n >= 32 {
            let a = load(s.cast::<[u128; 2]>());
            let b = load(s.add(n - 32).cast::<[u128; 2]>());
            store(d.cast::<[u128; 2]>(), a);
            store(d.add(n - 32).cast::<[u128; 2]>(), b);
        } else if n >= 16 {
            let a = load(s.cast::<u128>());
            let b = load(s.add(n - 16).cast::<u128>());
            store(d.cast::<u128>(), a);
            store(d.add(n - 16).cast::<u128>(), b);
        } else if n >= 8 {
            let a = load(s.cast::<u64>());
            let b = load(s.add(n - 8).cast::<u64>());
            store(d.cast::<u64>(), a);
            store(d.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let a = load(s.cast::<u32>());
            let b = load(s.add(n - 4).cast::<u32>());
            store(d.cast::<u32>(), a);
            store(d.add(n - 4).cast::<u32>(), b);
        } else if n >= 2 {
            let a = load(s.cast::<u16>());
            let b = load(s.add(n - 2).cast::<u16>());
            store(d.cast::<u16>(), a);
            store(d.add(n - 2).cast::<u16>(), b);
        } else if n == 1 {
            *d = *s;
        }
    }
}

#[inline(always)]
unsafe fn rep_movsb(d: *mut u8, s: *const u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies exactly n bytes forward from s to d, as the caller guarantees is valid;
    // the direction flag is clear (the ABI says so on function entry).
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") d => _,
            inout("rsi") s => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above; only reached on x86_64 (see `copy`), kept for other targets' builds.
    unsafe {
        let mut i = 0;
        while i < n {
            *d.add(i) = *s.add(i);
            i += 1;
        }
    }
}

/// Copies `n` bytes from `s` to `d`; the ranges may overlap.
///
/// # Safety
/// As C's `memmove`: `s` valid for `n` reads, `d` for `n` writes.
#[inline]
pub unsafe fn copy_overlapping(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: the caller's contract. Forward when the destination starts before the source
    // (a block is read before any later store can reach it), else backward; the first (or
    // last) 32 bytes are read before the loop and written after it, so the overlapping tail
    // never reads bytes the loop already overwrote.
    unsafe {
        if n <= 64 {
            copy_small(d, s, n);
        } else if (d as usize).wrapping_sub(s as usize) >= n {
            // d < s, or no overlap at all: forward.
            copy_forward(d, s, n);
        } else {
            // s < d < s + n: backward.
            let first = load(s.cast::<[u128; 2]>());
            let mut end = n;
            while end >= 64 {
                end -= 32;
                store(
                    d.add(end).cast::<[u128; 2]>(),
                    load(s.add(end).cast::<[u128; 2]>()),
                );
            }
            // Bytes [32, end) are still to copy (end < 64): read before the first store.
            if end > 32 {
                let rest = load(s.add(end - 32).cast::<[u128; 2]>());
                store(d.add(end - 32).cast::<[u128; 2]>(), rest);
            }
            store(d.cast::<[u128; 2]>(), first);
        }
    }
}

/// Fills `n` bytes at `d` with `c`.
///
/// # Safety
/// As C's `memset`: `d` valid for `n` writes.
#[inline]
pub unsafe fn fill(d: *mut u8, c: u8, n: usize) {
    // The byte in every lane, by multiplication: `[c; 8]` would itself be a call to memset
    // in an unoptimized build.
    let b8 = u64::from(c) * 0x0101_0101_0101_0101;
    let b16 = u128::from(b8) | (u128::from(b8) << 64);
    // SAFETY: every store lies within [0, n).
    unsafe {
        if n >= 32 {
            if n >= REP_FROM && cfg!(target_arch = "x86_64") {
                #[cfg(target_arch = "x86_64")]
                core::arch::asm!(
                    "rep stosb",
                    inout("rcx") n => _,
                    inout("rdi") d => _,
                    in("al") c,
                    options(nostack, preserves_flags)
                );
                return;
            }
            let mut i = 0;
            while i + 32 <= n {
                store(d.add(i).cast::<[u128; 2]>(), [b16, b16]);
                i += 32;
            }
            store(d.add(n - 32).cast::<[u128; 2]>(), [b16, b16]);
        } else if n >= 16 {
            store(d.cast::<u128>(), b16);
            store(d.add(n - 16).cast::<u128>(), b16);
        } else if n >= 8 {
            store(d.cast::<u64>(), b8);
            store(d.add(n - 8).cast::<u64>(), b8);
        } else {
            let mut i = 0;
            while i < n {
                *d.add(i) = c;
                i += 1;
            }
        }
    }
}

/// Compares `n` bytes: negative, zero or positive as the first differing byte of `a` is
/// below, equal to or above `b`'s (unsigned), as C's `memcmp`.
///
/// # Safety
/// `a` and `b` valid for `n` reads.
#[inline]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: every load lies within [0, n) of both ranges.
    unsafe {
        while i + 8 <= n {
            let x = load(a.add(i).cast::<u64>());
            let y = load(b.add(i).cast::<u64>());
            if x != y {
                // Byte order decides: compare as big-endian numbers.
                return if u64::from_be(x) < u64::from_be(y) {
                    -1
                } else {
                    1
                };
            }
            i += 8;
        }
        while i < n {
            let (x, y) = (*a.add(i), *b.add(i));
            if x != y {
                return i32::from(x) - i32::from(y);
            }
            i += 1;
        }
    }
    0
}

/// Zero when the `n` bytes are equal, non-zero otherwise (C's `bcmp`, which Rust calls for
/// slice equality).
///
/// # Safety
/// `a` and `b` valid for `n` reads.
#[inline]
pub unsafe fn differ(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: every load lies within [0, n) of both ranges.
    unsafe {
        if n >= 8 {
            let mut i = 0;
            while i + 8 <= n {
                if load(a.add(i).cast::<u64>()) != load(b.add(i).cast::<u64>()) {
                    return 1;
                }
                i += 8;
            }
            return i32::from(load(a.add(n - 8).cast::<u64>()) != load(b.add(n - 8).cast::<u64>()));
        }
        let mut i = 0;
        while i < n {
            if *a.add(i) != *b.add(i) {
                return 1;
            }
            i += 1;
        }
    }
    0
}

/// The C symbols, in place of musl's, in static x86_64 musl builds.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
mod exported {
    /// # Safety
    /// C's `memcpy`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the C contract is the caller's.
        unsafe { super::copy(d, s, n) };
        d
    }

    /// # Safety
    /// C's `memmove`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the C contract is the caller's.
        unsafe { super::copy_overlapping(d, s, n) };
        d
    }

    /// # Safety
    /// C's `memset`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the C contract is the caller's; C passes the byte as an int.
        unsafe { super::fill(d, c as u8, n) };
        d
    }

    /// # Safety
    /// C's `memcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the C contract is the caller's.
        unsafe { super::compare(a, b, n) }
    }

    /// # Safety
    /// C's `bcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the C contract is the caller's.
        unsafe { super::differ(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn sizes() -> impl Strategy<Value = usize> {
        prop_oneof![0usize..=130, 130usize..9000]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn copy_is_a_copy(n in sizes(), from in 0usize..64, to in 0usize..64, seed: u8) {
            let src: Vec<u8> = (0..n + from).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let mut dst = std::vec![0xAAu8; n + to + 8];
            // SAFETY: both ranges are in bounds and distinct allocations.
            unsafe { copy(dst.as_mut_ptr().add(to), src.as_ptr().add(from), n) };
            prop_assert_eq!(&dst[to..to + n], &src[from..from + n]);
            prop_assert!(dst[..to].iter().all(|&b| b == 0xAA), "wrote before");
            prop_assert!(dst[to + n..].iter().all(|&b| b == 0xAA), "wrote after");
        }

        #[test]
        fn overlapping_copy_is_memmove(n in sizes(), from in 0usize..200, to in 0usize..200) {
            let len = n + 200;
            let original: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(3)).collect();
            let mut want = original.clone();
            want.copy_within(from..from + n, to);
            let mut got = original.clone();
            // SAFETY: from + n and to + n are within the buffer.
            unsafe {
                let p = got.as_mut_ptr();
                copy_overlapping(p.add(to), p.add(from), n);
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn fill_fills(n in sizes(), at in 0usize..64, c: u8) {
            let mut buf = std::vec![!c; n + at + 8];
            // SAFETY: in bounds.
            unsafe { fill(buf.as_mut_ptr().add(at), c, n) };
            prop_assert!(buf[at..at + n].iter().all(|&b| b == c));
            prop_assert!(buf[..at].iter().chain(&buf[at + n..]).all(|&b| b == !c));
        }

        #[test]
        fn compare_orders_like_slices(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<prop::sample::Index>(),
            to in any::<u8>(),
        ) {
            let mut b = a.clone();
            if !b.is_empty() {
                let i = flip.index(b.len());
                b[i] = to;
            }
            let n = a.len();
            // SAFETY: both have n bytes.
            let (c, d) = unsafe { (compare(a.as_ptr(), b.as_ptr(), n), differ(a.as_ptr(), b.as_ptr(), n)) };
            prop_assert_eq!(c.signum(), a.cmp(&b) as i32);
            prop_assert_eq!(d != 0, a != b);
        }
    }
}
