//! Python's `multiprocessing`, in Rust, on `fork`: [`Process`], [`current_process`], [`Pool`], and
//! the ways processes talk ([`Pipe`], [`Queue`], [`JoinableQueue`], [`SimpleQueue`],
//! [`connection::wait`]), synchronize ([`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`],
//! [`Event`], [`Condition`], [`Barrier`]) and share ([`Value`], [`Array`], [`RawArray`],
//! [`RawValue`], [`shared_memory::SharedMemory`], a [`Manager`]), plus Python's
//! `concurrent.futures` ([`futures::ProcessPoolExecutor`]), made to be read side by side with the
//! Python original and run inside a Jupyter notebook (evcxr).
//!
//! Where Python hangs or loses data when a process dies (a lock, semaphore or barrier holder
//! killed, a pool worker killed, a manager gone, a shared-memory creator killed), this crate returns
//! a typed [`Error`] and leaves the primitive usable; each type's docs say how.
//!
//! | Python | This crate |
//! |---|---|
//! | `import multiprocessing` | `use multiprocessing::prelude::*;` |
//! | `p = Process(target=f, args=(i,))` | `let mut p = Process::new(move \|\| f(i));` |
//! | `Process(target=f, name="w", daemon=True)` | `Process::builder().name("w").daemon(true).target(f)?` |
//! | `p.start()` | `p.start()?;` |
//! | `p.join()` | `p.join()?;` (returns the exit code) |
//! | `p.join(timeout=0.5)` | `p.join_timeout(Duration::from_millis(500))?` (`None` if still running) |
//! | `p.is_alive()` | `p.is_alive()?` (`Error::NotOwner` from another process than the parent, as Python asserts) |
//! | `p.pid`, `p.name`, `p.daemon` | `p.pid()` (`Option<i32>`), `p.name()`, `p.daemon()` |
//! | `p.name = "x"`, `p.daemon = True` | `p.set_name("x")?`, `p.set_daemon(true)?` |
//! | `p.exitcode` | `p.exitcode()` (`None` / `0` / `1` / `N` / `-signal`) |
//! | `p.terminate()`, `p.kill()` | `p.terminate()?`, `p.kill()?` |
//! | `sys.exit(3)` in a child | `multiprocessing::exit(3)` |
//! | raising an exception in the target | `panic!`, or `Err(..)` from a `Process::new_fallible` closure: exit code 1, report on stderr |
//! | `current_process().name`, `.pid` | `current_process().name()`, `.pid()` |
//! | `parent_process()` | `parent_process()` (`Option<ParentProcess>`) |
//! | `active_children()` | `active_children()` (`Vec<ActiveChild>`) |
//! | `cpu_count()` | `cpu_count()` |
//! | `with Pool(4) as pool: pool.map(f, xs)` | `Pool::with(4, \|pool\| pool.map(f, xs))?` (terminates at the end, as `__exit__`) |
//! | `pool = Pool()`, `Pool(processes=4)` | `Pool::builder().build()?` (one per CPU), `Pool::new(4)?` |
//! | `Pool(2, initializer=init, initargs=(a,), maxtasksperchild=10)` | `Pool::builder().processes(2).initializer(move \|\| init(a)).maxtasksperchild(10).build()?` |
//! | `pool.map(f, xs)`, `pool.starmap(g, pairs)` | `pool.map(f, xs)?`, `pool.starmap(g, pairs)?` (`f`: a `fn` or non-capturing closure) |
//! | `pool.map(f, xs, chunksize=100)` | `pool.chunked(100).map(f, xs)?` |
//! | `pool.apply(f, (x,))` | `pool.apply(f, x)?` |
//! | `r = pool.apply_async(f, (x,))`, `pool.map_async(f, xs)` | `let r = pool.apply_async(f, x)?;`, `pool.map_async(f, xs)?` |
//! | `r.get()`, `r.get(timeout=1)` | `r.get()?`, `r.get_timeout(Duration::from_secs(1))?` |
//! | `r.wait()`, `r.ready()`, `r.successful()` | `r.wait()?`, `r.ready()`, `r.successful()?` |
//! | `for y in pool.imap(f, xs)`, `imap_unordered` | `for y in pool.imap(f, xs)? { let y = y?; }`, `pool.imap_unordered(f, xs)?` |
//! | `pool.close()`, `pool.join()`, `pool.terminate()` | `pool.close()`, `pool.join()?`, `pool.terminate()` |
//! | an exception in a pool task | `Err(Error::TaskPanicked { index, worker, message })`; the pool stays usable |
//! | a pool worker killed: Python hangs forever | `Err(Error::WorkerDied { worker, pid, how, task })` at once; the worker is replaced |
//! | `ValueError: Pool not running` | `Err(Error::PoolNotRunning { .. })` |
//! | `AssertionError: cannot start a process twice` | `Err(Error::AlreadyStarted { .. })` |
//! | `AssertionError: can only join a started process` | `Err(Error::NotStarted { .. })` |
//! | `AssertionError: daemonic processes are not allowed to have children` | `Err(Error::DaemonChildren { .. })` |
//! | `a, b = Pipe()` | `let (a, b) = Pipe::new()?;` |
//! | `a.send(obj)`, `b.recv()` | `a.send(obj)?`, `b.recv::<T>()?` |
//! | `b.poll(1)`, `if b.poll(1): b.recv()` | `b.poll(Duration::from_secs(1))?`, `b.recv_timeout::<T>(Duration::from_secs(1))?` |
//! | `EOFError` from `recv()` (the other end closed) | `Err(Error::Disconnected { .. })` |
//! | `q = Queue()`, `q.put(x)`, `q.get()` | `let q = Queue::new()?;` (or `Queue::<T>::new()?`), `q.put(&x)?`, `q.get()?` |
//! | `q.get(timeout=1)`, `q.get_nowait()`, `queue.Empty` | `q.get_timeout(Duration::from_secs(1))?`, `q.get_nowait()?`, `Err(Error::Empty { .. })` |
//! | `q.empty()`, `q.qsize()` | `q.empty()`, `q.qsize()` |
//! | `lock = Lock()`, `with lock: ...` | `let lock = Lock::new()?;`, `{ let _g = lock.acquire()?; ... }` or `lock.with(\|\| ...)?` |
//! | `lock.acquire(False)`, `lock.acquire(timeout=1)` | `lock.try_acquire()?`, `lock.acquire_timeout(Duration::from_secs(1))?` (`Option<LockGuard>`) |
//! | a Lock holder dies: Python's lock stays locked forever | `Err(Error::LockOwnerDied { pid })`, then the lock is free |
//! | `v = Value('i', 0)`, `v.value`, `v.value = 3` | `let v = Value::new(0i32)?;`, `v.get()`, `v.set(3)` |
//! | `with v.get_lock(): v.value += 1` | `v.update(\|x\| *x += 1)`, or `*v.lock() += 1` |
//! | `lock.locked()` | `lock.locked()` |
//! | `e = Event()`, `e.set()`, `e.clear()`, `e.is_set()` | `let e = Event::new()?;`, `e.set()?`, `e.clear()?`, `e.is_set()?` |
//! | `e.wait()`, `e.wait(timeout=1)` | `e.wait()?`, `e.wait_timeout(Duration::from_secs(1))?` (`bool`) |
//! | `s = Semaphore(2)`, `BoundedSemaphore(2)` | `let s = Semaphore::new(2)?;`, `BoundedSemaphore::new(2)?` |
//! | `s.acquire()`, `s.release()`, `with s:`, `s.get_value()` | `s.acquire()?`, `s.release()?`, `s.with(\|\| ...)?`, `s.value()?` |
//! | `s.acquire(False)`, `s.acquire(timeout=1)` | `s.try_acquire()?`, `s.acquire_timeout(Duration::from_secs(1))?` (`bool`) |
//! | `ValueError: Semaphore released too many times` | `Err(Error::ReleasedTooOften { .. })` |
//! | a Semaphore holder dies: its units are lost | `Err(Error::HolderDied { .. })`, then the units are free |
//! | `r = RLock()`, `with r: with r: ...` | `let r = RLock::new()?;`, `let _a = r.acquire()?; let _b = r.acquire()?;` |
//! | `c = Condition()`, `with c: c.wait()` | `let c = Condition::new()?;`, `let mut g = c.acquire()?; g.wait()?;` |
//! | `c.wait(1)`, `c.wait_for(pred, 1)` | `g.wait_timeout(Duration::from_secs(1))?`, `g.wait_for(pred)?` / `g.wait_for_timeout(pred, d)?` |
//! | `c.notify()`, `c.notify(n)`, `c.notify_all()` | `g.notify()?`, `g.notify_n(n)?`, `g.notify_all()?` |
//! | `b = Barrier(3)`, `b.wait()`, `b.wait(1)` | `let b = Barrier::new(3)?;`, `b.wait()?`, `b.wait_timeout(Duration::from_secs(1))?` |
//! | `b.parties`, `b.n_waiting`, `b.broken`, `b.abort()`, `b.reset()` | `b.parties()`, `b.n_waiting()?`, `b.broken()?`, `b.abort()?`, `b.reset()?` |
//! | `threading.BrokenBarrierError`; a party dies: the others hang | `Err(Error::BrokenBarrier { .. })`, also when a waiting party dies |
//! | `a = Array('i', [1, 2])`, `Array('d', 5)` | `let a = Array::new(&[1i32, 2])?;`, `Array::filled(5, 0.0f64)?` |
//! | `a[0]`, `a[0] = 7`, `a[:]`, `len(a)` | `a.get(0)?`, `a.set(0, 7)?`, `a.to_vec()`, `a.len()` |
//! | `with a.get_lock(): a[0] += 1` | `a.update(\|s\| s[0] += 1)`, or `a.lock()[0] += 1` |
//! | `RawArray('i', 10)`, `RawValue('d', 0.5)` | `RawArray::filled(10, 0i32)?`, `RawValue::new(0.5f64)?` |
//! | `shared_memory.SharedMemory(create=True, size=n)` | `shared_memory::SharedMemory::create(n)?` (or `create_named(name, n)`) |
//! | `SharedMemory(name)`, `shm.buf[:5] = b"hi"`, `bytes(shm.buf[:5])` | `SharedMemory::attach(name)?`, `shm.write(0, b"hi")?`, `shm.read(0, 5)?` |
//! | `shm.close()`, `shm.unlink()` | `shm.close()`, `shm.unlink()?` (the name also goes when the creator dies, even killed) |
//! | `q = Queue(maxsize=2)`, `q.full()` | `let q = Queue::with_maxsize(2)?;`, `q.full()` |
//! | `q.put(x, timeout=1)`, `q.put_nowait(x)`, `queue.Full` | `q.put_timeout(&x, Duration::from_secs(1))?`, `q.put_nowait(&x)?`, `Err(Error::Full { .. })` |
//! | `q.close()` | `q.close()` (then `Err(Error::QueueClosed)` in this process) |
//! | `q = JoinableQueue()`, `q.task_done()`, `q.join()` | `let q = JoinableQueue::new()?;`, `q.task_done()?`, `q.join()?` |
//! | `q = SimpleQueue()`, `q.put(x)`, `q.get()`, `q.empty()` | `let q = SimpleQueue::new()?;`, `q.put(&x)?`, `q.get()?`, `q.empty()` |
//! | `r, w = Pipe(duplex=False)` | `let (r, w) = Pipe::one_way()?;` |
//! | `a.send_bytes(b)`, `b.recv_bytes()` | `a.send_bytes(&b)?`, `b.recv_bytes()?` |
//! | `connection.wait([a, b, p.sentinel], timeout)` | `connection::wait(&[&a, &b, &p.sentinel()?], Some(timeout))?` (indices of the ready ones) |
//! | `p.sentinel`, `p.close()` | `p.sentinel()?`, `p.close()?` |
//! | `pool.starmap_async(g, pairs)` | `pool.starmap_async(g, pairs)?` |
//! | `pool.apply_async(f, (x,), callback=cb, error_callback=ecb)` | `pool.apply_async(f, x)?.callback(cb).error_callback(ecb)` (they run in the notebook process, inside whichever pool call waits) |
//! | `m = Manager()`, `with Manager() as m:` | `let m = Manager::new()?;`, `Manager::with(\|m\| ...)?` |
//! | `m.dict()`, `m.list()`, `m.Value('i', 0)`, `m.Queue()`, `m.Lock()` | `m.dict::<K, V>()?`, `m.list::<T>()?`, `m.value(0i32)?`, `m.queue::<T>()?`, `m.lock()?` |
//! | the manager process dies: proxies raise `EOFError`/`BrokenPipeError` | `Err(Error::ManagerDied { .. })` from every proxy |
//! | `from concurrent.futures import ProcessPoolExecutor` | `use multiprocessing::futures::ProcessPoolExecutor;` |
//! | `with ProcessPoolExecutor(4) as ex: f = ex.submit(fn, x)` | `ProcessPoolExecutor::with(4, \|ex\| { let f = ex.submit(fn, x)?; ... })?` |
//! | `f.result()`, `f.result(timeout=1)`, `f.done()`, `f.cancel()`, `f.exception()` | `f.result()?`, `f.result_timeout(Duration::from_secs(1))?`, `f.done()`, `f.cancel()`, `f.exception()?` |
//! | `as_completed(fs)`, `wait(fs, return_when=FIRST_COMPLETED)` | `futures::as_completed(&fs, None)`, `futures::wait(&fs, None, ReturnWhen::FirstCompleted)?` |
//! | `ex.map(fn, xs)`, `ex.shutdown(wait=True, cancel_futures=False)` | `ex.map(fn, xs)?`, `ex.shutdown(true, false)?` |
//! | a worker dies: `BrokenProcessPool` for every future | `Err(Error::WorkerDied { .. })` for its future only; the executor goes on |
//!
//! No `if __name__ == '__main__':` is needed: children are forked, never re-imported, so a closure
//! may capture any variable. Output a child prints shows in the cell that waits for it (`join`,
//! `is_alive`, ...), whole lines, in the order the children printed them. See [`process`] for how
//! children are made, reaped and killed with their parent.

pub mod array;
pub mod barrier;
pub mod condition;
pub mod connection;
pub mod current;
pub mod display;
pub mod error;
pub mod event;
pub mod futures;
pub mod joinable_queue;
pub mod managers;
pub mod pipe;
pub mod pool;
pub mod process;
pub mod queue;
pub mod rlock;
pub mod semaphore;
pub mod shared;
pub mod shared_memory;
pub mod simple_queue;
pub mod sync;

mod child;
mod fork;
mod output;
mod registry;
mod session;
mod shm;
mod show;
mod sys;
mod wait;
mod waiters;
mod wire;

pub use array::{Array, ArrayGuard, RawArray, RawValue};
pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use current::{
    active_children, cpu_count, current_process, exit, parent_process, ActiveChild, CurrentProcess,
    ParentProcess,
};
pub use error::{Error, PipeEnd, PoolState, Result};
pub use event::Event;
pub use joinable_queue::JoinableQueue;
pub use managers::Manager;
pub use pipe::{Connection, Pipe};
pub use pool::{AsyncResult, Chunked, IMap, Pool, PoolBuilder, Progress, TaskStream};
pub use process::{Process, ProcessBuilder};
pub use queue::Queue;
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use shared::{Shareable, Value, ValueGuard};
pub use simple_queue::SimpleQueue;
pub use sync::{Lock, LockGuard};

/// Everything a notebook needs, in one `use` (the project's kernel imports it at start-up).
pub mod prelude {
    pub use crate::current::{active_children, cpu_count, current_process, parent_process};
    pub use crate::error::{Error, Result};
    pub use crate::pipe::{Connection, Pipe};
    pub use crate::pool::{AsyncResult, IMap, Pool};
    pub use crate::process::Process;
    pub use crate::queue::Queue;
    pub use crate::shared::{Shareable, Value};
    pub use crate::sync::Lock;
    pub use crate::{Array, JoinableQueue, Manager, RawArray, RawValue, SimpleQueue};
    pub use crate::{Barrier, BoundedSemaphore, Condition, Event, RLock, Semaphore};
}
