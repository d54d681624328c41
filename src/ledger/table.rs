//! The memory of the big tables (the keys', the phones'): tens of megabytes for a million rows,
//! built and dropped phase after phase (pre-flight, sending, summary). They come from the system
//! allocator, which gives a block this large a mapping of its own and unmaps it when it is
//! dropped (`main.rs` holds glibc's mmap threshold at 128 KiB). The global allocator, mimalloc,
//! serves the HTTP stack's many small blocks faster, but keeps the pages it frees for reuse: a
//! run of a million rows then held the pre-flight's tables beside the summary's. Each table asks
//! for huge pages, since its probes are random.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A fixed number of `[u32; N]` slots, zeroed, from the system allocator.
pub(crate) struct Table<const N: usize> {
    ptr: NonNull<[u32; N]>,
    len: usize,
}

// SAFETY: a `Table` owns its slots alone, as a `Box<[[u32; N]]>` does.
unsafe impl<const N: usize> Send for Table<N> {}
// SAFETY: shared access only reads the slots.
unsafe impl<const N: usize> Sync for Table<N> {}

impl<const N: usize> Table<N> {
    fn layout(len: usize) -> Layout {
        // More slots than the address space holds: as `Vec` does, give up.
        Layout::array::<[u32; N]>(len)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(Layout::new::<[u32; N]>()))
    }

    /// `len` slots, every one zero.
    pub(crate) fn zeroed(len: usize) -> Table<N> {
        if len == 0 {
            return Table {
                ptr: NonNull::dangling(),
                len: 0,
            };
        }
        let layout = Self::layout(len);
        // SAFETY: the layout's size is not zero (`len` and `N` are not).
        let raw = unsafe { System.alloc_zeroed(layout) };
        match NonNull::new(raw.cast::<[u32; N]>()) {
            Some(ptr) => {
                advise_huge_pages(raw, layout.size());
                Table { ptr, len }
            }
            None => std::alloc::handle_alloc_error(layout),
        }
    }
}

/// Asks Linux for 2 MiB pages over the part of a fresh block they can cover. Every probe of a
/// table lands on a random 4 KiB page of tens of megabytes, so without them nearly every probe
/// also misses the TLB (a page walk, costlier still under a hypervisor). With them, `status`
/// of 200,000 rows takes 0.952 of its time and a resume of a million rows 0.927 (README, Speed
/// and memory). A huge page is resident once any byte of it is touched, but a table's probes,
/// spread evenly over it, touch every page anyway: a million rows peak at 55.3 MB against 54.6
/// MB. Where transparent huge pages are off, the advice is ignored.
#[cfg(target_os = "linux")]
fn advise_huge_pages(raw: *mut u8, size: usize) {
    const HUGE: usize = 2 << 20;
    let start = (raw as usize).next_multiple_of(HUGE);
    let end = (raw as usize + size) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice only, on whole pages inside the block just allocated.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: *mut u8, _: usize) {}

impl<const N: usize> Drop for Table<N> {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated by `zeroed` with this very layout, and freed once.
            unsafe { System.dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len)) }
        }
    }
}

impl<const N: usize> Deref for Table<N> {
    type Target = [[u32; N]];
    fn deref(&self) -> &[[u32; N]] {
        // SAFETY: `len` initialised slots (zeroed at least) live at `ptr` while `self` does.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<const N: usize> DerefMut for Table<N> {
    fn deref_mut(&mut self) -> &mut [[u32; N]] {
        // SAFETY: as `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Table<N> {
        Table::zeroed(0)
    }
}

impl<const N: usize> Clone for Table<N> {
    fn clone(&self) -> Table<N> {
        let mut copy = Table::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<const N: usize> std::fmt::Debug for Table<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} slots)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_starts_zeroed_keeps_what_is_written_and_clones_it() {
        let mut t = Table::<3>::zeroed(100_000);
        assert_eq!(t.len(), 100_000);
        assert!(t.iter().all(|s| *s == [0; 3]));
        t[99_999] = [1, 2, 3];
        let copy = t.clone();
        assert_eq!(copy[99_999], [1, 2, 3]);
        assert_eq!(copy[0], [0; 3]);
        assert!(Table::<4>::default().is_empty());
    }
}
