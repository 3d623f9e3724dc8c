//! The item header layout and raw accessors. Owns the byte layout of an item inside a slab
//! chunk; it must not decide anything about locking, expiry or eviction (callers hold the
//! locks named in `storage`'s module doc before calling these).
//!
//! ```text
//! offset  size  field
//!  0      8     h_next   next item in the same hash bucket (or in the class free list)
//!  8      8     prev     LRU neighbour towards the head (more recent)
//! 16      8     next     LRU neighbour towards the tail (older)
//! 24      8     version  clock::stamp() of the last write: cas unique and write order
//! 32      4     exptime  absolute unix seconds, 0 = never
//! 36      4     atime    unix seconds of the last access
//! 40      4     flags    the client's opaque flags
//! 44      4     vlen     value length
//! 48      4     hash     high 32 bits of the key hash (stripe and bucket)
//! 52      1     klen     key length (1..=KEY_MAX_LENGTH)
//! 53      1     class    slab class index
//! 54      1     iflags   FETCHED | ACTIVE | TOMBSTONE | WIN_SENT | STALE | KEY_BINARY
//! 55      1     magic    the chunk's state: FREE_MAGIC (on its class free list), TAKEN_MAGIC
//!                        (handed out, not yet or no longer linked), ITEM_MAGIC (in the hash
//!                        table and its LRU); written only under the class lock
//! 56      klen  key
//! 56+klen vlen  value (no trailing "\r\n")
//! ```

use std::ptr;
use std::sync::atomic::AtomicU32;

/// The header that starts every chunk. Field meanings are in the module doc.
#[repr(C)]
pub struct Item {
    pub h_next: *mut Item,
    pub prev: *mut Item,
    pub next: *mut Item,
    pub version: u64,
    pub exptime: u32,
    /// Atomic because `stats items` reads the LRU tail's under the class lock alone.
    pub atime: AtomicU32,
    pub flags: u32,
    pub vlen: u32,
    pub hash: u32,
    pub klen: u8,
    pub class: u8,
    pub iflags: u8,
    pub magic: u8,
}

pub const HEADER: usize = std::mem::size_of::<Item>();
// The header keeps a key's length in a byte.
const _: () = assert!(super::KEY_MAX_LENGTH <= u8::MAX as usize);
pub const ITEM_MAGIC: u8 = 0xA7;
pub const TAKEN_MAGIC: u8 = 0x7A;
pub const FREE_MAGIC: u8 = 0x5F;

/// Read at least once since stored.
pub const FETCHED: u8 = 2;
/// Read since the eviction walker last passed it: earns one more trip round the LRU.
pub const ACTIVE: u8 = 4;
/// A deletion remembered for replication: key only (vlen 0), version of the delete, exptime
/// when it is forgotten. Invisible to clients and not counted as an item.
pub const TOMBSTONE: u8 = 8;
/// Meta protocol: one client has been told it won the right to recache the item.
pub const WIN_SENT: u8 = 16;
/// Meta protocol: invalidated by `md ... I`; served, marked stale, until replaced.
pub const STALE: u8 = 32;
/// Meta protocol: the key was sent in base64 (`b`), so it is shown in base64.
pub const KEY_BINARY: u8 = 64;

/// Whether the item is a tombstone.
///
/// # Safety
/// `it` is allocated and the caller holds its stripe or class lock.
pub unsafe fn is_tombstone(it: *const Item) -> bool {
    // SAFETY: the caller guarantees a live header; iflags are read under its locks.
    unsafe { (*it).iflags & TOMBSTONE != 0 }
}

/// Bytes an item with these lengths takes in its chunk.
pub fn total_size(klen: usize, vlen: usize) -> usize {
    HEADER + klen + vlen
}

/// Fills a taken chunk's header, all but `magic` (which the class lock guards), with `atime`
/// as its last access. The key and value bytes are written by the caller.
///
/// # Safety
/// `it` points to a chunk taken from class `class`, of at least `total_size(klen, vlen)`
/// bytes, 8-byte aligned, that no other thread reads or writes but for its magic.
pub unsafe fn init(it: *mut Item, class: u8, klen: usize, vlen: usize, hash: u32, atime: u32) {
    debug_assert!(klen > 0 && klen <= usize::from(u8::MAX));
    // SAFETY: the caller hands over an aligned chunk large enough for the header; each field
    // is written in place so the magic byte is left alone.
    unsafe {
        (*it).h_next = ptr::null_mut();
        (*it).prev = ptr::null_mut();
        (*it).next = ptr::null_mut();
        (*it).version = 0;
        (*it).exptime = 0;
        ptr::addr_of_mut!((*it).atime).write(AtomicU32::new(atime));
        (*it).flags = 0;
        (*it).vlen = u32::try_from(vlen).unwrap_or(u32::MAX);
        (*it).hash = hash;
        (*it).klen = u8::try_from(klen).unwrap_or(u8::MAX);
        (*it).class = class;
        (*it).iflags = 0;
    }
}

/// # Safety
/// `it` points to an allocated item (magic checked in debug builds).
pub unsafe fn check(it: *const Item) {
    // SAFETY: the caller guarantees `it` is a live chunk with a header.
    let magic = unsafe { (*it).magic };
    debug_assert!(magic == ITEM_MAGIC || magic == TAKEN_MAGIC, "item header corrupt or freed");
}

/// The key bytes.
///
/// # Safety
/// `it` is allocated, and the caller holds the item's stripe lock (or owns it alone) for `'a`.
pub unsafe fn key<'a>(it: *const Item) -> &'a [u8] {
    // SAFETY: the key lies right after the header inside the chunk (init sized it).
    unsafe {
        check(it);
        std::slice::from_raw_parts((it as *const u8).add(HEADER), usize::from((*it).klen))
    }
}

/// The value bytes.
///
/// # Safety
/// As for `key`.
pub unsafe fn value<'a>(it: *const Item) -> &'a [u8] {
    // SAFETY: the value follows the key inside the chunk (init sized it).
    unsafe {
        check(it);
        let base = (it as *const u8).add(HEADER + usize::from((*it).klen));
        std::slice::from_raw_parts(base, (*it).vlen as usize)
    }
}

/// The value bytes, writable.
///
/// # Safety
/// As for `key`, and no other reference to this item's value exists for `'a`.
pub unsafe fn value_mut<'a>(it: *mut Item) -> &'a mut [u8] {
    // SAFETY: as for `value`; exclusivity is the caller's promise.
    unsafe {
        check(it);
        let base = (it as *mut u8).add(HEADER + usize::from((*it).klen));
        std::slice::from_raw_parts_mut(base, (*it).vlen as usize)
    }
}

/// The key area, writable, for filling a fresh item.
///
/// # Safety
/// As for `value_mut`.
pub unsafe fn key_mut<'a>(it: *mut Item) -> &'a mut [u8] {
    // SAFETY: the key lies right after the header inside the chunk (init sized it).
    unsafe {
        check(it);
        std::slice::from_raw_parts_mut((it as *mut u8).add(HEADER), usize::from((*it).klen))
    }
}

/// Bytes this item takes (header, key, value).
///
/// # Safety
/// `it` is allocated.
pub unsafe fn size_of(it: *const Item) -> usize {
    // SAFETY: reading the header of an allocated item.
    unsafe { total_size(usize::from((*it).klen), (*it).vlen as usize) }
}

/// A doubly linked LRU of items of one slab class: head = most recently stored or bumped.
/// Guarded by its class mutex.
pub struct Lru {
    pub head: *mut Item,
    pub tail: *mut Item,
}

impl Lru {
    pub const fn new() -> Lru {
        Lru { head: ptr::null_mut(), tail: ptr::null_mut() }
    }

    /// # Safety
    /// `it` is allocated and not in any LRU; the caller holds this LRU's class lock.
    pub unsafe fn push_head(&mut self, it: *mut Item) {
        // SAFETY: `it` and the current head are allocated items of this class.
        unsafe {
            check(it);
            (*it).prev = ptr::null_mut();
            (*it).next = self.head;
            if self.head.is_null() {
                self.tail = it;
            } else {
                (*self.head).prev = it;
            }
            self.head = it;
        }
    }

    /// # Safety
    /// `it` is in this LRU; the caller holds this LRU's class lock.
    pub unsafe fn remove(&mut self, it: *mut Item) {
        // SAFETY: `it` and its neighbours are allocated items linked in this LRU.
        unsafe {
            check(it);
            let (prev, next) = ((*it).prev, (*it).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev = prev;
            }
            (*it).prev = ptr::null_mut();
            (*it).next = ptr::null_mut();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HEADER;

    #[test]
    fn header_is_56_bytes() {
        assert_eq!(HEADER, 56);
        assert_eq!(std::mem::align_of::<super::Item>(), 8);
    }
}
