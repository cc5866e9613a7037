//! [`SharedMemory`]: Python's `multiprocessing.shared_memory.SharedMemory`, a named block of bytes
//! that any process can attach to by name, forked from this one or not.
//!
//! | Python | Rust |
//! |---|---|
//! | `shm = SharedMemory(create=True, size=1024)` | `let shm = SharedMemory::create(1024)?;` |
//! | `SharedMemory(name="block", create=True, size=1024)` | `SharedMemory::create_named("block", 1024)?` |
//! | `other = SharedMemory(name=shm.name)` | `let other = SharedMemory::attach(shm.name())?;` |
//! | `shm.buf[0:5] = b"hello"` | `shm.write(0, b"hello")?` |
//! | `bytes(shm.buf[0:5])` | `shm.read(0, 5)?` |
//! | `shm.name`, `shm.size` | `shm.name()`, `shm.size()` |
//! | `shm.close()` | `shm.close()` (or drop it) |
//! | `shm.unlink()` | `shm.unlink()?` |
//! | `FileExistsError`, `FileNotFoundError` | `Err(Error::SharedMemoryExists { .. })`, `Err(Error::SharedMemoryNotFound { .. })` |
//!
//! The block is a file in `/dev/shm` (as Python's on Linux), mapped into each process that opens it.
//! As in Python, the name stays until someone calls `unlink()`, or until the process that created it
//! is gone: each created block has a watcher, a tiny detached process that holds the read end of a
//! pipe whose write end only the creator (and processes it forks) hold. When the last of them ends,
//! even killed with SIGKILL, the watcher removes the name and exits; after `unlink()` it exits at once.
//! Python's resource tracker does the same job (one process for all blocks; ours is one per block,
//! and it never removes a newer block that reused the name).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::shm::FileMapping;

const DIR: &str = "/dev/shm";

/// A named block of shared memory (Python's `multiprocessing.shared_memory.SharedMemory`). Clones,
/// and the copies forked children get, are the same block.
///
/// ```
/// use multiprocessing::{shared_memory::SharedMemory, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let shm = SharedMemory::create(16)?; // Python: SharedMemory(create=True, size=16)
/// let name = shm.name().to_owned();
/// let mut p = Process::new(move || {
///     let other = SharedMemory::attach(&name).unwrap(); // Python: SharedMemory(name=name)
///     other.write(0, b"hello").unwrap();
/// });
/// p.start()?;
/// p.join()?;
/// assert_eq!(shm.read(0, 5)?, b"hello");
/// shm.unlink()?; // the name is gone; this mapping stays valid until dropped
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    name: String,
    size: usize,
    map: Arc<FileMapping>,
    /// The creator's end of its watcher's pipe (`None` in a process that attached).
    watch: Arc<Mutex<WatchEnd>>,
}

/// The write end of a watcher's pipe. Kept open until `unlink()`, even when every handle is dropped:
/// the name must live until `unlink()` or the end of the process, as in Python.
struct WatchEnd(Option<OwnedFd>);

impl Drop for WatchEnd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            // On purpose: keep the descriptor open until this process ends (see above).
            std::mem::forget(fd);
        }
    }
}

fn check_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > 250 || bare.contains(['/', '\0']) {
        return Err(Error::InvalidArgument {
            name: "shared memory name",
            value: format!("{name:?}"),
            fix: "use 1 to 250 characters without '/' or NUL (a leading '/' is allowed)",
        });
    }
    Ok(bare)
}

fn path(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// A fresh name like Python's `psm_1a2b3c4d`.
fn random_name() -> String {
    let mut bytes = [0u8; 8];
    let ok = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let n = if ok.is_ok() {
        u64::from_le_bytes(bytes)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ ((std::process::id() as u64) << 32)
    };
    format!("psm_{:016x}", n)
}

fn io_error(call: &'static str, e: std::io::Error) -> Error {
    Error::os(
        call,
        nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

impl SharedMemory {
    /// Creates a new block of `size` bytes, all zero, under a fresh name (Python's
    /// `SharedMemory(create=True, size=size)`). A `size` of 0 is [`Error::InvalidArgument`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = multiprocessing::shared_memory::SharedMemory::create(4)?;
    /// assert_eq!(shm.read(0, 4)?, [0, 0, 0, 0]);
    /// assert!(shm.name().starts_with("psm_"));
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(size: usize) -> Result<SharedMemory> {
        loop {
            match SharedMemory::create_named(&random_name(), size) {
                Err(Error::SharedMemoryExists { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Creates a new block named `name` (Python's `SharedMemory(name, create=True, size=size)`);
    /// [`Error::SharedMemoryExists`] if the name is taken.
    ///
    /// ```
    /// use multiprocessing::{shared_memory::SharedMemory, Error};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = SharedMemory::create_named("doc_example_block", 8)?;
    /// assert!(matches!(
    ///     SharedMemory::create_named("doc_example_block", 8),
    ///     Err(Error::SharedMemoryExists { .. })
    /// ));
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        let name = check_name(name)?;
        if size == 0 {
            return Err(Error::InvalidArgument {
                name: "size",
                value: "0".into(),
                fix: "create a block of at least 1 byte",
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path(name))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::SharedMemoryExists {
                    name: name.to_owned(),
                },
                _ => io_error("open /dev/shm", e),
            })?;
        let made = (|| {
            file.set_len(size as u64)
                .map_err(|e| io_error("ftruncate", e))?;
            let map = FileMapping::new(&file, size)?;
            let watch = start_watcher(name, &file)?;
            Ok((map, watch))
        })();
        let (map, watch) = match made {
            Ok(made) => made,
            Err(e) => {
                let _ = std::fs::remove_file(path(name));
                return Err(e);
            }
        };
        Ok(SharedMemory {
            name: name.to_owned(),
            size,
            map: Arc::new(map),
            watch: Arc::new(Mutex::new(WatchEnd(Some(watch)))),
        })
    }

    /// Opens the existing block `name` (Python's `SharedMemory(name)`), from any process;
    /// [`Error::SharedMemoryNotFound`] if there is none.
    ///
    /// ```
    /// use multiprocessing::{shared_memory::SharedMemory, Error};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = SharedMemory::create(3)?;
    /// let again = SharedMemory::attach(shm.name())?;
    /// again.write(0, &[7])?;
    /// assert_eq!(shm.read(0, 1)?, [7]);
    /// shm.unlink()?;
    /// assert!(matches!(SharedMemory::attach(shm.name()), Err(Error::SharedMemoryNotFound { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn attach(name: &str) -> Result<SharedMemory> {
        let name = check_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path(name))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::SharedMemoryNotFound {
                    name: name.to_owned(),
                },
                _ => io_error("open /dev/shm", e),
            })?;
        let size = file.metadata().map_err(|e| io_error("fstat", e))?.len() as usize;
        if size == 0 {
            return Err(Error::SharedMemoryNotFound {
                name: name.to_owned(),
            });
        }
        Ok(SharedMemory {
            name: name.to_owned(),
            size,
            map: Arc::new(FileMapping::new(&file, size)?),
            watch: Arc::new(Mutex::new(WatchEnd(None))),
        })
    }

    /// The block's name, without a leading '/' (Python's `shm.name`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = multiprocessing::shared_memory::SharedMemory::create(1)?;
    /// println!("attach with SharedMemory::attach({:?})", shm.name());
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The block's size in bytes (Python's `shm.size`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = multiprocessing::shared_memory::SharedMemory::create(100)?;
    /// assert_eq!(shm.size(), 100);
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        if offset.checked_add(len).map_or(true, |end| end > self.size) {
            return Err(Error::InvalidArgument {
                name: "range",
                value: format!(
                    "{offset}..{} (size {})",
                    offset.saturating_add(len),
                    self.size
                ),
                fix: "stay within 0..size()",
            });
        }
        Ok(())
    }

    /// Copies `len` bytes from `offset` (Python's `bytes(shm.buf[offset:offset+len])`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = multiprocessing::shared_memory::SharedMemory::create(2)?;
    /// assert_eq!(shm.read(0, 2)?, [0, 0]);
    /// assert!(shm.read(1, 2).is_err()); // past the end
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        self.check_range(offset, len)?;
        let mut out = vec![0; len];
        self.map.read(offset, &mut out);
        Ok(out)
    }

    /// Copies `bytes` to `offset` (Python's `shm.buf[offset:offset+len(b)] = b`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = multiprocessing::shared_memory::SharedMemory::create(8)?;
    /// shm.write(2, &[1, 2, 3])?;
    /// assert_eq!(shm.read(0, 6)?, [0, 0, 1, 2, 3, 0]);
    /// shm.unlink()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.check_range(offset, bytes.len())?;
        self.map.write(offset, bytes);
        Ok(())
    }

    /// Unmaps this handle (Python's `shm.close()`); the same as dropping it. The block and its name
    /// stay for others until `unlink()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// use multiprocessing::shared_memory::SharedMemory;
    /// let shm = SharedMemory::create(1)?;
    /// let name = shm.name().to_owned();
    /// shm.close();
    /// SharedMemory::attach(&name)?.unlink()?; // still there
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(self) {}

    /// Removes the name (Python's `shm.unlink()`): no process can attach any more; mappings already
    /// made stay valid until closed. [`Error::SharedMemoryNotFound`] if it was removed already.
    ///
    /// ```
    /// use multiprocessing::{shared_memory::SharedMemory, Error};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let shm = SharedMemory::create(1)?;
    /// shm.unlink()?;
    /// assert!(matches!(shm.unlink(), Err(Error::SharedMemoryNotFound { .. })));
    /// shm.write(0, &[1])?; // this mapping still works
    /// # Ok(())
    /// # }
    /// ```
    pub fn unlink(&self) -> Result<()> {
        let removed = std::fs::remove_file(path(&self.name)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::SharedMemoryNotFound {
                name: self.name.clone(),
            },
            _ => io_error("unlink /dev/shm", e),
        });
        // Tell the watcher (if this process made the block): its job is done.
        if let Ok(mut watch) = self.watch.lock() {
            drop(watch.0.take());
        }
        removed
    }
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

/// Starts the watcher of a new block: returns the write end of its pipe. When every copy of that
/// end is closed (this process and its children all gone, or `unlink()`), the watcher removes the
/// name if it still names the same file, and exits.
fn start_watcher(name: &str, file: &File) -> Result<OwnedFd> {
    let meta = file.metadata().map_err(|e| io_error("fstat", e))?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe2", e))?;
    let target = path(name);
    crate::fork::spawn_detached(read.as_fd(), move |fd| {
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if let Ok(now) = std::fs::metadata(&target) {
            if now.dev() == dev && now.ino() == ino {
                let _ = std::fs::remove_file(&target);
            }
        }
        0
    })?;
    drop(read);
    Ok(write)
}
