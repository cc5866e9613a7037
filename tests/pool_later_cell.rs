//! A pool created before a function's code was loaded (evcxr: a pool from cell 1, a function from
//! cell 2, each cell its own shared library) runs that function: the workers dlopen the library.
//! When the library cannot be loaded, the call fails with FunctionUnavailable naming the fix: no
//! segfault, no hang.
//!
//! The fixture `tests/fixtures/later_cell` is built here with cargo (into `target/fixtures`) and
//! loaded with dlopen only after the pool's workers were forked.

#[path = "process_support/mod.rs"]
mod process_support;

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

use multiprocessing::Pool;
use process_support::isolate_with;

type LaterMap = unsafe extern "C" fn(*const Pool, u64, u32, *mut u64, *mut u8, usize) -> i64;

fn build_fixture() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("tests/fixtures/later_cell/Cargo.toml");
    let target = root.join("target/fixtures");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo to build the fixture");
    assert!(status.success(), "building the later_cell fixture failed");
    target.join("debug/liblater_cell.so")
}

/// dlopen `path` (as evcxr loads a cell) and find `later_cell_map`.
fn load(path: &Path) -> LaterMap {
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; the library is our fixture, whose initialisers are Rust's.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {path:?} failed");
    // SAFETY: a live handle and a NUL-terminated symbol name.
    let sym: *mut c_void = unsafe { libc::dlsym(handle, c"later_cell_map".as_ptr()) };
    assert!(!sym.is_null());
    // SAFETY: the fixture defines later_cell_map with exactly the LaterMap signature.
    unsafe { std::mem::transmute::<*mut c_void, LaterMap>(sym) }
}

fn call(f: LaterMap, pool: &Pool, n: u64, panic: bool) -> Result<Vec<u64>, String> {
    let mut out = vec![0u64; n as usize];
    let mut msg = vec![0u8; 4096];
    // SAFETY: `pool` is live and built from the same sources; out and msg have the stated room.
    let got = unsafe {
        f(
            pool,
            n,
            panic as u32,
            out.as_mut_ptr(),
            msg.as_mut_ptr(),
            msg.len(),
        )
    };
    if got < 0 {
        Err(CStr::from_bytes_until_nul(&msg)
            .unwrap()
            .to_string_lossy()
            .into_owned())
    } else {
        out.truncate(got as usize);
        Ok(out)
    }
}

#[test]
fn pool_runs_a_function_from_a_library_loaded_after_its_workers() {
    let library = build_fixture();
    let copy = std::env::temp_dir().join(format!("later_cell_{}.so", std::process::id()));
    std::fs::copy(&library, &copy).unwrap();
    let (lib, tmp) = (
        library.to_str().unwrap().to_owned(),
        copy.to_str().unwrap().to_owned(),
    );
    let out = isolate_with(
        "pool_runs_a_function_from_a_library_loaded_after_its_workers",
        std::time::Duration::from_secs(120),
        &[("LATER_CELL_LIB", &lib), ("LATER_CELL_COPY", &tmp)],
    );
    let _ = std::fs::remove_file(&copy);
    if let Some(out) = out {
        out.assert_success();
        let lines = out.lines();
        for n in 0..10 {
            assert!(
                lines.contains(&format!("later cell squares {n}").as_str()),
                "{lines:?}"
            );
        }
        return;
    }
    let pool = Pool::new(2).unwrap();
    // Only now is the "later cell" loaded; the workers were forked without it.
    let later = load(Path::new(&std::env::var("LATER_CELL_LIB").unwrap()));
    let got = call(later, &pool, 10, false).unwrap();
    assert_eq!(got, (0..10u64).map(|n| n * n + 1).collect::<Vec<_>>());
    // A panic in the later cell's function is reported like any other.
    let err = call(later, &pool, 4, true).unwrap_err();
    assert!(
        err.contains("TaskPanicked") && err.contains("panic from the later cell"),
        "{err}"
    );
    // Again (the workers cached the library), and after a worker was replaced.
    assert_eq!(call(later, &pool, 3, false).unwrap(), [1, 2, 5]);

    // A library that is gone from disk by the time the workers need it: a clear error, no crash.
    let copy = std::env::var("LATER_CELL_COPY").unwrap();
    let pool2 = Pool::new(1).unwrap();
    let gone = load(Path::new(&copy));
    std::fs::remove_file(&copy).unwrap();
    let err = call(gone, &pool2, 3, false).unwrap_err();
    assert!(
        err.contains("FunctionUnavailable")
            && err.contains("create the Pool after defining the function"),
        "{err}"
    );
    // The pool is still usable with a function it can reach.
    assert_eq!(call(later, &pool2, 2, false).unwrap(), [1, 2]);
    // A pool created after the library was loaded reaches it directly.
    let pool3 = Pool::new(1).unwrap();
    assert_eq!(call(gone, &pool3, 2, false).unwrap(), [1, 2]);
}
