//! How a function reaches a worker process.
//!
//! A pool takes plain `fn` pointers. For each call the parent sends two code addresses: the function
//! itself and a *trampoline*, an `extern "C"` function monomorphised for the function's argument and
//! result types, which decodes a chunk of arguments, calls the function on each, and encodes the
//! results. A forked worker shares the parent's address space layout, so the addresses are valid there
//! -- as long as the code was loaded before the worker was forked.
//!
//! Inside evcxr every cell is a new shared object (`libcode_N.so`, kept for the kernel's life). A pool
//! created in cell 1 has workers that never saw cell 2's library. The loader counts the objects it
//! has loaded ([`loads`]); the parent notes that count when it forks a worker and when it describes
//! an address. Code described at a count no higher than the worker's was loaded before the worker
//! was forked: the address goes as it is ([`FnRef::Inherited`], the usual case, which costs the
//! worker nothing). Anything else goes with its library (path, load base, from `dladdr`), and the
//! worker checks with its own `dladdr` that the address is mapped *and* belongs to that same
//! library, and otherwise `dlopen`s the library by path and rebases the offset. It never jumps to an
//! address nobody verified: a function it cannot reach becomes
//! [`Error::FunctionUnavailable`](crate::Error::FunctionUnavailable), not a segfault.
//!
//! With `sys.rs` and `shm.rs`, one of the three modules that hold `unsafe`; every block says why
//! it is sound.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::io::Write;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A code address, as a worker receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FnRef {
    /// Code the parent had loaded when it forked the worker: the worker has it at the same address.
    Inherited(usize),
    /// Code that may have been loaded after the worker was forked (a later evcxr cell).
    Located {
        /// The address in the parent.
        addr: usize,
        /// The shared object holding it: its path and load base in the parent. `None` when `dladdr`
        /// knows no object for it (a statically linked program), in which case it was mapped
        /// before any fork.
        lib: Option<(Vec<u8>, usize)>,
    },
}

/// A code address as the parent saw it: what a worker needs to reach it.
#[derive(Debug)]
pub(crate) struct Described {
    addr: usize,
    lib: Option<(Vec<u8>, usize)>,
    /// [`loads`] when it was described: the code was loaded by then.
    loads: u64,
}

impl Described {
    /// The reference for a worker forked when [`loads`] was `forked_at`.
    pub(crate) fn for_worker(&self, forked_at: u64) -> FnRef {
        if self.loads <= forked_at {
            // Loaded before that fork (the counter only grows; an object unloaded and loaded again
            // counts again), and a worker unloads nothing: the same code is at the same address.
            FnRef::Inherited(self.addr)
        } else {
            FnRef::Located {
                addr: self.addr,
                lib: self.lib.clone(),
            }
        }
    }
}

/// How many objects the dynamic loader has loaded into this process so far (`dlpi_adds` of
/// `dl_iterate_phdr`, which only grows).
pub(crate) fn loads() -> u64 {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `dl_phdr_info` (glibc has had `dlpi_adds` since 2.4)
        // and our `data`, a `&mut u64` alive for the call.
        unsafe { *(data as *mut u64) = (*info).dlpi_adds };
        1 // one object is enough: every entry carries the same counter
    }
    let mut count = u64::MAX;
    // SAFETY: `first` matches the callback type and only writes through `data`, which points at
    // `count` on our stack for the duration of the call. If the callback never runs, `count` stays
    // u64::MAX, which makes every address `Located` (the checked path).
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut count as *mut u64).cast()) };
    count
}

/// Dl_info, decoded.
struct Located {
    path: Vec<u8>,
    base: usize,
}

/// `dladdr(addr)`: the object holding `addr` in this process, if any.
fn locate(addr: usize) -> Option<Located> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the loader's tables and fills `info`, which lives on our stack. It
    // never dereferences `addr`, so any value is sound.
    let found = unsafe { libc::dladdr(addr as *const c_void, &mut info) };
    if found == 0 || info.dli_fbase.is_null() {
        return None;
    }
    let path = if info.dli_fname.is_null() {
        Vec::new()
    } else {
        // SAFETY: on success dli_fname points to the loader's NUL-terminated copy of the object's
        // name, which lives as long as the object stays loaded; we copy it at once.
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_bytes()
            .to_vec()
    };
    Some(Located {
        path,
        base: info.dli_fbase as usize,
    })
}

/// In the parent: describes a code address for workers.
pub(crate) fn describe(addr: usize) -> Described {
    // The object holding `addr` is loaded already (the caller holds a pointer into it): counted.
    let loads = loads();
    Described {
        addr,
        lib: locate(addr).map(|l| (l.path, l.base)),
        loads,
    }
}

/// In a worker: turns parent addresses into verified local ones, loading later libraries as needed.
/// Lives on the worker loop's stack (a `static` would exist once per evcxr cell).
#[derive(Default)]
pub(crate) struct Resolver {
    resolved: HashMap<usize, usize>,
    /// Libraries this worker `dlopen`ed, by path: their load base here (handles are kept open).
    opened: HashMap<Vec<u8>, usize>,
}

impl Resolver {
    /// The local address of `f`, or why it cannot be reached (ending with how to fix it).
    pub(crate) fn resolve(&mut self, f: &FnRef) -> std::result::Result<usize, String> {
        let (addr, lib) = match f {
            // The parent checked (`Described::for_worker`); no lookup, no table: a new worker's
            // first task touches none of the loader's pages.
            FnRef::Inherited(addr) => return Ok(*addr),
            FnRef::Located { addr, lib } => (*addr, lib),
        };
        if let Some(&local) = self.resolved.get(&addr) {
            return Ok(local);
        }
        let local = self.resolve_uncached(addr, lib)?;
        self.resolved.insert(addr, local);
        Ok(local)
    }

    fn resolve_uncached(
        &mut self,
        addr: usize,
        lib: &Option<(Vec<u8>, usize)>,
    ) -> std::result::Result<usize, String> {
        let here = locate(addr);
        let Some((path, parent_base)) = lib else {
            // The parent's loader knows no object for it: a static image, mapped before the fork.
            return match here {
                None => Ok(addr),
                Some(_) => Err("its code address means something else in the worker; create the Pool after defining the function".into()),
            };
        };
        // Mapped here already, from the same object at the same base: the worker was forked after
        // the library was loaded.
        if let Some(here) = &here {
            if &here.path == path && here.base == *parent_base {
                return Ok(addr);
            }
        }
        let offset = addr - parent_base;
        let base = match self.opened.get(path) {
            Some(&base) => base,
            None => {
                let base = open_library(path)?;
                self.opened.insert(path.clone(), base);
                base
            }
        };
        let local = base + offset;
        match locate(local) {
            Some(check) if &check.path == path && check.base == base => Ok(local),
            _ => Err(format!(
                "after loading {} in the worker, the function's address is not inside it; create the Pool after defining the function",
                String::from_utf8_lossy(path)
            )),
        }
    }
}

/// The part of glibc's `struct link_map` we read (its public prefix, see `<link.h>`).
#[repr(C)]
struct LinkMapPrefix {
    l_addr: usize,
    l_name: *const libc::c_char,
    l_ld: *mut c_void,
}

/// `dlopen`s `path` in this worker (RTLD_NOW | RTLD_LOCAL; the handle is kept open for the worker's
/// life) and returns the object's load base, as `dladdr` reports it.
fn open_library(path: &[u8]) -> std::result::Result<usize, String> {
    let shown = String::from_utf8_lossy(path).into_owned();
    let fix = "create the Pool after defining the function (or define it before creating the Pool)";
    let c_path = CString::new(path)
        .map_err(|_| format!("its library path {shown:?} contains a NUL byte; {fix}"))?;
    // SAFETY: c_path is a valid NUL-terminated string. dlopen runs the library's initialisers; the
    // library is one the parent process already loaded and runs, so they are the same code the
    // parent ran at its own load.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "the function was defined after the pool's workers started, and its library could not be loaded in the worker: {}; {fix}",
            dl_error()
        ));
    }
    let mut map: *mut LinkMapPrefix = std::ptr::null_mut();
    // SAFETY: handle is a live dlopen handle; RTLD_DI_LINKMAP stores one `struct link_map *` into the
    // pointer-sized location we pass.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&mut map as *mut *mut LinkMapPrefix).cast(),
        )
    };
    if rc != 0 || map.is_null() {
        return Err(format!("dlinfo failed for {shown}: {}; {fix}", dl_error()));
    }
    // SAFETY: map points to the loader's link_map for a library we keep open, so it stays valid; we
    // only read the documented leading fields.
    let dynamic = unsafe { (*map).l_ld } as usize;
    // l_ld (the object's dynamic section) lies inside the object: dladdr on it gives the base in the
    // same terms as the parent's dladdr.
    match locate(dynamic) {
        Some(found) => Ok(found.base),
        None => Err(format!(
            "could not find where {shown} was loaded in the worker; {fix}"
        )),
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader, valid until the
    // next dl* call on this thread; we copy it at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Where a trampoline writes its output bytes: a C-ABI callback, so that a trampoline compiled in a
/// later cell (with its own copy of std and of this crate) can hand bytes to the worker loop.
#[repr(C)]
pub(crate) struct Sink {
    ctx: *mut c_void,
    write: unsafe extern "C" fn(*mut c_void, *const u8, usize),
}

unsafe extern "C" fn append_to_vec(ctx: *mut c_void, bytes: *const u8, len: usize) {
    // SAFETY: `ctx` is the `&mut Vec<u8>` that `Sink::to_vec` captured, alive for the call; the
    // trampoline passes a pointer/length pair of a live byte slice.
    unsafe { (*(ctx as *mut Vec<u8>)).extend_from_slice(std::slice::from_raw_parts(bytes, len)) }
}

/// The trampoline ran every item and the sink holds the encoded results.
pub(crate) const STATUS_OK: u32 = 0;
/// An item panicked: the sink holds the panic message, the progress slot the item's index.
pub(crate) const STATUS_PANICKED: u32 = 1;
/// Arguments could not be decoded or results encoded: the sink holds the message.
pub(crate) const STATUS_CODEC: u32 = 2;

/// The C signature every trampoline has:
/// `(function, input bytes, input length, progress slot, index of the first item, sink) -> status`.
pub(crate) type Trampoline =
    unsafe extern "C" fn(usize, *const u8, usize, *mut u64, u64, *const Sink) -> u32;

/// A shape of function a pool can call: how to call the function at an address on one input.
pub(crate) trait Shape: 'static {
    type In: Serialize + DeserializeOwned + 'static;
    type Out: Serialize + DeserializeOwned + 'static;
    /// # Safety
    /// `func` must be the address of a function of this shape's exact type.
    unsafe fn call(func: usize, input: Self::In) -> Self::Out;
}

/// `fn(T) -> R`.
pub(crate) struct Unary<T, R>(PhantomData<fn(T) -> R>);
/// `fn(A, B) -> R`, called on `(A, B)` pairs.
pub(crate) struct Binary<A, B, R>(PhantomData<fn(A, B) -> R>);

impl<T, R> Shape for Unary<T, R>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type In = T;
    type Out = R;
    unsafe fn call(func: usize, input: T) -> R {
        // SAFETY: the caller guarantees `func` came from a `fn(T) -> R` (see `Pool::submit`): the
        // parent pairs this trampoline only with such a function, and a worker only uses a verified
        // address of the same code.
        let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(func) };
        f(input)
    }
}

impl<A, B, R> Shape for Binary<A, B, R>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type In = (A, B);
    type Out = R;
    unsafe fn call(func: usize, (a, b): (A, B)) -> R {
        // SAFETY: as for `Unary`: `func` is a `fn(A, B) -> R`.
        let f: fn(A, B) -> R = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
        f(a, b)
    }
}

/// The address of the trampoline for shape `S` (monomorphised in the caller's crate copy, i.e. in the
/// evcxr cell that calls the pool).
pub(crate) fn trampoline_addr<S: Shape>() -> usize {
    trampoline::<S> as Trampoline as usize
}

/// Decodes a `Vec<S::In>` ([`crate::wire::Items`]: a bulk kind item by item), calls the function
/// on each item (storing `first + k + 1` in the progress slot before item k), and writes the
/// encoded `Vec<S::Out>` to the sink ([`crate::wire::Results`]: a bulk result is encoded as soon
/// as it is made). Catches panics (never lets one unwind into C), and flushes this copy of std's
/// stdout and stderr.
unsafe extern "C" fn trampoline<S: Shape>(
    func: usize,
    input: *const u8,
    len: usize,
    progress: *mut u64,
    first: u64,
    sink: *const Sink,
) -> u32 {
    // SAFETY: the worker loop passes a live byte slice, a progress slot mapped for the worker's life
    // (8-byte aligned, only accessed atomically), and a live sink.
    let (input, progress, sink) = unsafe {
        (
            std::slice::from_raw_parts(input, len),
            AtomicU64::from_ptr(progress),
            &*sink,
        )
    };
    let emit = |bytes: &[u8]| {
        // SAFETY: `sink.write` is `append_to_vec` with its own context; bytes is a live slice.
        unsafe { (sink.write)(sink.ctx, bytes.as_ptr(), bytes.len()) }
    };
    // Results go to the sink only once every item ran (a panic leaves nothing there but its
    // message), encoded inside the catch: a user's `Serialize` may panic too.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| -> std::result::Result<(), String> {
        let mut items =
            crate::wire::Items::<S::In>::new(input).map_err(|e| format!("task arguments: {e}"))?;
        let mut out = crate::wire::Results::new(items.len(), input.len());
        let mut k = 0;
        if let (crate::wire::Items::Decoded(decoded), crate::wire::Results::Kept(kept)) =
            (&mut items, &mut out)
        {
            // Neither side a bulk kind (a million tiny tasks): the plain loop, nothing to
            // decide per item.
            for item in decoded {
                progress.store(first + k + 1, Ordering::Relaxed);
                // SAFETY: the parent sends this trampoline only with a function of shape S.
                kept.push(unsafe { S::call(func, item) });
                k += 1;
            }
        }
        for item in items.by_ref() {
            let item = item.map_err(|e| format!("task arguments: {e}"))?;
            progress.store(first + k + 1, Ordering::Relaxed);
            // SAFETY: the parent sends this trampoline only together with a function of shape S.
            out.push(unsafe { S::call(func, item) });
            k += 1;
        }
        items.finish().map_err(|e| format!("task arguments: {e}"))?;
        out.finish(emit).map_err(|e| format!("task results: {e}"))
    }));
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    match outcome {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(message)) => {
            emit(message.as_bytes());
            STATUS_CODEC
        }
        Err(payload) => {
            let message = crate::error::panic_message(&*payload);
            // Dropping a panic payload can itself panic; forget it rather than risk unwinding into C.
            std::mem::forget(payload);
            emit(message.as_bytes());
            STATUS_PANICKED
        }
    }
}

/// In a worker: calls the trampoline at `tramp` (a verified local address) and collects its output.
pub(crate) fn call_trampoline(
    tramp: usize,
    func: usize,
    input: &[u8],
    progress: &ProgressSlot,
    first: u64,
    out: &mut Vec<u8>,
) -> u32 {
    // SAFETY: `tramp` was resolved and verified by `Resolver` from an address the parent took from
    // `trampoline_addr`, so it is a function with the `Trampoline` signature.
    let t: Trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
    let sink = Sink {
        ctx: (out as *mut Vec<u8>).cast(),
        write: append_to_vec,
    };
    // SAFETY: all pointers are to live data of this frame for the duration of the call; the
    // trampoline catches every panic.
    unsafe {
        t(
            func,
            input.as_ptr(),
            input.len(),
            progress.item_ptr(),
            first,
            &sink,
        )
    }
}

/// Memory shared between a pool's parent and its workers (mapped before they are forked): two
/// words per worker, in which a worker writes which chunk and which task it is running, so that when
/// it dies the parent can name the task. One page for the whole pool, not a mapping per worker: a
/// mapping costs the parent an `mmap`, a `munmap` and a region every later fork copies.
#[derive(Debug)]
pub(crate) struct ProgressPage {
    /// `None` only while being dropped (the page goes to [`SPARE_PAGE`]).
    words: Option<crate::shm::SharedWords>,
    /// The process that mapped it: only there may it be kept for another pool (a forked child
    /// shares it with the parent's pool).
    owner: u32,
    /// Slots no live worker uses.
    free: std::cell::RefCell<Vec<usize>>,
}

/// Slots per page: 4096 bytes of two-word slots.
const PAGE_SLOTS: usize = 4096 / 16;

/// The one-page progress page of the last pool dropped in this process (and its pid), for the
/// next pool: mapping and unmapping a shared page cost more than a pool's few tiny tasks. Once a
/// pool is dropped its workers are reaped, so nobody else writes to it; each slot is zeroed when
/// handed out ([`ProgressSlot::new`]). Per copy of this crate: in evcxr, per cell.
static SPARE_PAGE: std::sync::Mutex<Option<(u32, crate::shm::SharedWords)>> =
    std::sync::Mutex::new(None);

impl ProgressPage {
    /// A page with a slot for each of `workers` (at least a page's worth, so that replacements of
    /// workers not yet reaped find one).
    pub(crate) fn new(workers: usize) -> Result<std::rc::Rc<Self>> {
        let slots = workers.saturating_mul(2).max(PAGE_SLOTS);
        let owner = std::process::id();
        let spare = if slots == PAGE_SLOTS {
            SPARE_PAGE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                // A page inherited by a fork is the parent's: unmapped here, not used.
                .and_then(|(pid, words)| (pid == owner).then_some(words))
        } else {
            None
        };
        let words = match spare {
            Some(words) => words,
            None => crate::shm::SharedWords::new(2 * slots)?,
        };
        Ok(std::rc::Rc::new(ProgressPage {
            words: Some(words),
            owner,
            free: std::cell::RefCell::new((0..slots).rev().collect()),
        }))
    }

    fn words(&self) -> &crate::shm::SharedWords {
        // `words` is taken only in `drop`.
        self.words.as_ref().expect("progress page in use")
    }
}

impl Drop for ProgressPage {
    fn drop(&mut self) {
        let Some(words) = self.words.take() else {
            return;
        };
        if words.len() == 2 * PAGE_SLOTS && self.owner == std::process::id() {
            *SPARE_PAGE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((self.owner, words));
        }
    }
}

/// One worker's two words: in the pool's [`ProgressPage`], or (all slots taken) a mapping of its own.
#[derive(Debug)]
pub(crate) struct ProgressSlot {
    page: std::rc::Rc<ProgressPage>,
    /// The slot in `page`; `None`: `page` is this slot's own.
    slot: Option<usize>,
}

impl ProgressSlot {
    /// A free slot of `page`, zeroed.
    pub(crate) fn new(page: &std::rc::Rc<ProgressPage>) -> Result<Self> {
        let taken = page.free.borrow_mut().pop();
        let slot = match taken {
            Some(slot) => ProgressSlot {
                page: page.clone(),
                slot: Some(slot),
            },
            None => ProgressSlot {
                page: ProgressPage::new(0)?,
                slot: None,
            },
        };
        slot.chunk().store(0, Ordering::Release);
        slot.item().store(0, Ordering::Release);
        Ok(slot)
    }

    fn base(&self) -> usize {
        2 * self.slot.unwrap_or(0)
    }

    fn chunk(&self) -> &AtomicU64 {
        self.page.words().word(self.base())
    }

    fn item(&self) -> &AtomicU64 {
        self.page.words().word(self.base() + 1)
    }

    fn item_ptr(&self) -> *mut u64 {
        self.page.words().word_ptr(self.base() + 1)
    }

    /// In the worker: about to run chunk `id` (`None`: between chunks).
    pub(crate) fn set_chunk(&self, id: Option<u64>) {
        if id.is_some() {
            self.item().store(0, Ordering::Release);
        }
        self.chunk()
            .store(id.map_or(0, |id| id + 1), Ordering::Release);
    }

    /// In the parent: the chunk the worker was running and the task inside it, if any.
    pub(crate) fn running(&self) -> Option<(u64, Option<usize>)> {
        let chunk = self.chunk().load(Ordering::Acquire).checked_sub(1)?;
        let item = self
            .item()
            .load(Ordering::Acquire)
            .checked_sub(1)
            .map(|i| i as usize);
        Some((chunk, item))
    }

    /// In the worker: the task index the trampoline last started (after a panic, the one that panicked).
    pub(crate) fn current_item(&self) -> Option<usize> {
        self.item()
            .load(Ordering::Acquire)
            .checked_sub(1)
            .map(|i| i as usize)
    }
}

impl Drop for ProgressSlot {
    /// The slot is free again once its worker is gone (the pool drops a worker after reaping it).
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.page.free.borrow_mut().push(slot);
        }
    }
}
