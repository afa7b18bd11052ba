//! Payload texts in per-thread arena chunks: serialized on the agent's thread without a heap
//! allocation of their own, freed wherever they are dropped.
//!
//! Why: a payload is written on the agent's thread and dropped on the worker's, after it was
//! sent. The system allocator (glibc's, at least) handles that pattern badly: the agent
//! thread's cache never gets its blocks back, so every payload allocation took the slow path
//! (locking the arena, faulting in pages the worker's frees had trimmed away). `perf` put that
//! at about two thirds of the agent thread's time for a span with arguments and a result.
//!
//! Here a payload text is copied to the end of a [`CHUNK`]-byte block owned by the writing
//! thread (aligned to its size, so a text finds its chunk's header by masking its address).
//! A chunk is freed by whoever drops its last text, counted without an atomic operation on the
//! writing thread: dropping a text decrements the chunk's `pending` count (which goes negative
//! while the chunk is in use), and the writing thread adds the number of texts it wrote in one
//! `fetch_add` when it moves to a new chunk or exits. Whichever of the two brings the count to
//! zero frees the chunk; before the writer's credit it cannot reach zero.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Bytes per chunk, and its alignment. Small, because one long-lived text (a payload kept in a
/// deferred span, or by the program itself) keeps its whole chunk alive.
const CHUNK: usize = 8 * 1024;
/// Where texts start in a chunk (after the header, on its own cache line).
const HEADER: usize = 64;
/// Longer texts are not stored in chunks (a chunk holds at least seven of them).
pub(crate) const LONGEST: usize = 1024;

#[repr(C)]
struct Header {
    /// Texts dropped (negative) plus texts written, once the writer credited them.
    pending: AtomicIsize,
}

/// The calling thread's chunk.
struct Writer {
    chunk: Cell<*mut u8>,
    used: Cell<usize>,
    written: Cell<isize>,
}

thread_local! {
    static WRITER: Writer = const {
        Writer { chunk: Cell::new(ptr::null_mut()), used: Cell::new(0), written: Cell::new(0) }
    };
}

/// Copies `text` into the calling thread's chunk and returns where it starts. `None` when the
/// text is empty or longer than [`LONGEST`], or when the thread is exiting.
pub(crate) fn store(text: &[u8]) -> Option<NonNull<u8>> {
    if text.is_empty() || text.len() > LONGEST {
        return None;
    }
    WRITER.try_with(|writer| writer.store(text)).ok()
}

/// Gives back a text returned by [`store`], on any thread.
///
/// # Safety
/// `text` came from [`store`] and is released once; its bytes are not read afterwards.
pub(crate) unsafe fn release(text: NonNull<u8>) {
    let chunk = text.as_ptr().map_addr(|address| address & !(CHUNK - 1));
    // SAFETY: texts are stored at offsets HEADER..CHUNK of a chunk aligned to CHUNK, so the
    // masked address is that chunk's start, which holds its header while texts are pending.
    let header = unsafe { &*chunk.cast::<Header>() };
    // AcqRel: the text's last reads (release) happen before the free (acquire).
    if header.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: this was the last pending text and the writer credited its count already.
        unsafe { free_chunk(chunk) };
    }
}

impl Writer {
    fn store(&self, text: &[u8]) -> NonNull<u8> {
        let mut used = self.used.get();
        if self.chunk.get().is_null() || used + text.len() > CHUNK {
            self.retire();
            self.chunk.set(allocate_chunk());
            used = HEADER;
        }
        // SAFETY: `used + len <= CHUNK`: the destination lies in this thread's chunk, past
        // every text stored before (which other threads may be reading).
        let at = unsafe { self.chunk.get().add(used) };
        // SAFETY: as above; the source is a live slice, not in the chunk's free part.
        unsafe { ptr::copy_nonoverlapping(text.as_ptr(), at, text.len()) };
        self.used.set(used + text.len());
        self.written.set(self.written.get() + 1);
        // SAFETY: inside a live allocation.
        unsafe { NonNull::new_unchecked(at) }
    }

    /// Credits the texts written to the current chunk and lets it go.
    fn retire(&self) {
        let chunk = self.chunk.replace(ptr::null_mut());
        if chunk.is_null() {
            return;
        }
        let written = self.written.replace(0);
        // SAFETY: the chunk is alive until its count reaches zero, which needs this credit.
        let header = unsafe { &*chunk.cast::<Header>() };
        // AcqRel: the writes of the texts (release) happen before a free by a dropper, and the
        // droppers' reads before a free here (acquire).
        if header.pending.fetch_add(written, Ordering::AcqRel) + written == 0 {
            // SAFETY: every text of the chunk was released.
            unsafe { free_chunk(chunk) };
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.retire();
    }
}

fn chunk_layout() -> Layout {
    // A power of two, far below `isize::MAX`: always a valid layout.
    Layout::from_size_align(CHUNK, CHUNK).unwrap_or_else(|_| Layout::new::<Header>())
}

fn allocate_chunk() -> *mut u8 {
    let layout = chunk_layout();
    // SAFETY: the layout is not zero-sized.
    let chunk = unsafe { alloc::alloc(layout) };
    if chunk.is_null() {
        alloc::handle_alloc_error(layout);
    }
    // SAFETY: the allocation is aligned for and larger than a header.
    unsafe { chunk.cast::<Header>().write(Header { pending: AtomicIsize::new(0) }) };
    chunk
}

/// # Safety
/// `chunk` came from [`allocate_chunk`] and no text of it is pending.
unsafe fn free_chunk(chunk: *mut u8) {
    // SAFETY: allocated with this layout (see the contract).
    unsafe { alloc::dealloc(chunk, chunk_layout()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn read(text: NonNull<u8>, len: usize) -> Vec<u8> {
        // SAFETY: test texts are read before they are released.
        unsafe { std::slice::from_raw_parts(text.as_ptr(), len) }.to_vec()
    }

    #[test]
    fn texts_keep_their_bytes_across_chunks() {
        let texts: Vec<Vec<u8>> = (0..3_000u32).map(|i| format!("{{\"i\":{i}}}").into_bytes()).collect();
        let stored: Vec<NonNull<u8>> = texts.iter().map(|text| store(text).expect("stored")).collect();
        for (text, at) in texts.iter().zip(&stored) {
            assert_eq!(&read(*at, text.len()), text);
        }
        for at in stored {
            // SAFETY: stored above, released once.
            unsafe { release(at) };
        }
    }

    #[test]
    fn empty_and_long_texts_are_not_stored() {
        assert!(store(b"").is_none());
        assert!(store(&vec![b'x'; LONGEST + 1]).is_none());
        let longest = store(&vec![b'x'; LONGEST]).expect("stored");
        // SAFETY: stored above, released once.
        unsafe { release(longest) };
    }

    /// Texts written on one thread, released on another in any order, while the writer goes on
    /// and then exits: every chunk is freed once (a double free or a leak fails under Miri).
    #[test]
    fn texts_released_on_another_thread() {
        let count = if cfg!(miri) { 400 } else { 20_000 };
        let (sender, receiver) = mpsc::channel::<(Sent, usize, Vec<u8>)>();
        let writer = std::thread::spawn(move || {
            for i in 0..count {
                let text = format!("{{\"n\":\"{}\"}}", "x".repeat(i % 300)).into_bytes();
                let at = store(&text).expect("stored");
                sender.send((Sent(at), text.len(), text)).expect("reader");
            }
        });
        let mut held = Vec::new();
        for (i, (Sent(at), len, expected)) in receiver.iter().enumerate() {
            assert_eq!(read(at, len), expected);
            held.push(at);
            if i % 3 == 0 {
                // Release out of order, some late.
                let at = held.swap_remove(fastrand_index(i, held.len()));
                // SAFETY: stored by the writer, released once.
                unsafe { release(at) };
            }
        }
        writer.join().expect("writer");
        for at in held {
            // SAFETY: stored by the writer, released once.
            unsafe { release(at) };
        }
    }

    /// A stored text handed to another thread (as a payload is, inside an operation).
    struct Sent(NonNull<u8>);
    // SAFETY: stored texts are immutable and released from any thread.
    unsafe impl Send for Sent {}

    fn fastrand_index(seed: usize, len: usize) -> usize {
        seed.wrapping_mul(2_654_435_761) % len
    }
}
